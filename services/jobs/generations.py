"""Async jobs as a kind of job: video, music and 3D generations (driven through the
router's long-running API on the `polls` consumer) and chat completions with
`webhook_url` (run once on the `runs` consumer), with the jobs-API operations that
create, read, list, cancel and delete them. Records: KV `sb_jobs`."""

from collections.abc import Mapping

from libs.contracts import subjects
from libs.runtime.env import env_float, env_int
from libs.runtime.kv_mirror import open_bucket
from services.jobs.chat_jobs import ChatJobs
from services.jobs.generation_polls import GenerationPolls, PollSettings
from services.jobs.job_api import JobApi
from services.jobs.job_records import JobStore
from services.jobs.kinds import ApiOp, JobsContext
from services.jobs.longrun_client import LongRunClient
from services.jobs.worker import GiveUp, Handler


def poll_settings() -> PollSettings:
    base = env_float("SWITCHBOARD_JOB_POLL_S", 1.0)
    return PollSettings(base_s=base, max_s=10 * base, deadline_s=env_float("SWITCHBOARD_JOB_DEADLINE_S", 6 * 3600.0),
                        max_errors=env_int("SWITCHBOARD_JOB_MAX_ERRORS", 8))


class Generations:
    def __init__(self, ctx: JobsContext) -> None:
        self._ctx = ctx
        self.ops: Mapping[str, ApiOp] = {}
        self.runs: Mapping[str, Handler] = {}
        self.polls: Mapping[str, Handler] = {}
        self.give_up: Mapping[str, GiveUp] = {}

    async def start(self) -> None:
        ctx = self._ctx
        store = JobStore(await open_bucket(ctx.js, subjects.KV_JOBS))
        statuses = await open_bucket(ctx.js, subjects.KV_WEBHOOK_STATUS)
        # One provider call per step: the router's own deadline for it, plus the hop.
        router = LongRunClient(ctx.nc, env_float("SWITCHBOARD_REQUEST_TIMEOUT_S", 130.0) + 5)
        settings = poll_settings()
        polls = GenerationPolls(store, router, ctx.events, settings)
        chats = ChatJobs(store, ctx.router, ctx.blobs, ctx.events, retry_s=settings.base_s)
        self.ops = JobApi(ctx.js, store, statuses, ctx.blobs, router).ops
        self.polls = {subjects.JOBS_WORK_GENERATION: polls.handle}
        self.runs = {subjects.JOBS_WORK_CHAT: chats.run}
        self.give_up = {subjects.JOBS_WORK_GENERATION: polls.give_up, subjects.JOBS_WORK_CHAT: chats.give_up}

    async def stop(self) -> None:
        return None
