"""Placeholder until its helper lands it (issue 8)."""

from collections.abc import Mapping

from services.jobs.kinds import ApiOp, JobsContext
from services.jobs.worker import GiveUp, Handler


class Batches:
    def __init__(self, ctx: JobsContext) -> None:
        self.ops: Mapping[str, ApiOp] = {}
        self.runs: Mapping[str, Handler] = {}
        self.polls: Mapping[str, Handler] = {}
        self.give_up: Mapping[str, GiveUp] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
