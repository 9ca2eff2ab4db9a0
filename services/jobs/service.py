"""The jobs process: answers the edge's eval and replay calls, and runs evals and
shadow replays pulled from the JOBS work queue."""

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.contracts import errors, streams, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, encode
from libs.contracts.errors import ErrorBody
from libs.contracts.http import evals as evals_http
from libs.contracts.http import replays as replays_http
from libs.runtime.env import env_float, env_int, nats_url
from libs.runtime.jetstream import ensure_stream
from libs.runtime.kv_mirror import open_bucket
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from services.jobs.api import JobsApi
from services.jobs.evals import Evals
from services.jobs.inference import RouterClient
from services.jobs.records import Records
from services.jobs.replays import Replays
from services.jobs.worker import Worker

log = structlog.get_logger()


class JobsService:
    def __init__(self) -> None:
        self._nc: Client | None = None
        self._worker: Worker | None = None
        self._subscription: Subscription | None = None

    @property
    def ready(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        self._nc = nc = await connect_nats(nats_url(), "switchboard-jobs")
        js = nc.jetstream()
        await ensure_stream(js, streams.JOBS)
        router = RouterClient(nc, env_float("SWITCHBOARD_REQUEST_TIMEOUT_S", 130.0))
        eval_records = Records(await open_bucket(js, subjects.KV_EVALS), evals_http.decode_view)
        replay_records = Records(await open_bucket(js, subjects.KV_REPLAYS), replays_http.decode_view)
        evals = Evals(nc, eval_records, await open_bucket(js, subjects.KV_EVAL_WINNERS), router,
                      concurrency=env_int("SWITCHBOARD_EVAL_CONCURRENCY", 8))
        replays = Replays(nc, replay_records, router)
        api = JobsApi(evals, eval_records, replays, replay_records)

        async def on_msg(msg: Msg) -> None:
            try:
                answer = await api.answer(msg.data)
            except Exception:
                log.exception("jobs_call_failed")
                answer = Failure(ErrorBody("The jobs service failed to answer; see its log.", errors.INTERNAL, 500))
            await msg.respond(encode(answer))

        async def run_eval(data: bytes) -> None:
            await evals.run(jobs_bus.decode_eval_work(data))

        async def run_replay(data: bytes) -> None:
            await replays.run(jobs_bus.decode_replay_work(data))

        self._subscription = await nc.subscribe(subjects.JOBS_API, queue=subjects.JOBS_QUEUE, cb=on_msg)
        self._worker = Worker(js, {subjects.JOBS_WORK_EVAL: run_eval, subjects.JOBS_WORK_REPLAY: run_replay},
                              {subjects.JOBS_WORK_EVAL: evals.give_up, subjects.JOBS_WORK_REPLAY: replays.give_up},
                              concurrency=env_int("SWITCHBOARD_JOBS_CONCURRENCY", 4),
                              ack_wait_s=env_float("SWITCHBOARD_JOBS_ACK_WAIT_S", 30.0))
        self._worker.start()
        await nc.flush()
        log.info("jobs_ready")

    async def stop(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # the connection may already be gone
                log.warning("unsubscribe_failed", error=repr(exc))
        if self._worker is not None:
            await self._worker.stop()
        if self._nc is not None:
            await shutdown_nats(self._nc)
