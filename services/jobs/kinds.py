"""What the jobs process hands each kind of job, and what a kind hands back: the
jobs-API operations it answers and the JOBS work it runs (runs, or polls)."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.js import JetStreamContext

from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, Reply
from libs.runtime.blobs import BlobStore
from libs.runtime.events import EventPublisher
from services.jobs.inference import RouterClient
from services.jobs.worker import GiveUp, Handler

Answer = Reply | Failure
ApiOp = Callable[[jobs_bus.JobsRequest], Awaitable[Answer]]


@dataclass(slots=True)
class JobsContext:
    nc: Client
    js: JetStreamContext
    router: RouterClient
    blobs: BlobStore  # subjects.OBJ_FILES: files, batch outputs, job results
    events: EventPublisher


class JobKind(Protocol):
    """One kind of job (generations, batches, ...): built from a JobsContext, started once."""

    ops: Mapping[str, ApiOp]  # jobs-API operations (bus/jobs.py JobsRequest.op) it answers
    runs: Mapping[str, Handler]  # subjects under JOBS_RUNS_PREFIX it runs to the end
    polls: Mapping[str, Handler]  # subjects under JOBS_POLLS_PREFIX it comes back to (Later)
    give_up: Mapping[str, GiveUp]  # per subject: record a message that failed too often

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
