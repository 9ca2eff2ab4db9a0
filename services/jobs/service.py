"""The jobs process: answers the edge's calls about async work (evals, replays,
generations, batches), and runs that work pulled from the JOBS work queue."""

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from libs.contracts import streams, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import encode
from libs.contracts.http import evals as evals_http
from libs.contracts.http import replays as replays_http
from libs.runtime.blobs import BlobStore
from libs.runtime.bus_failures import failure_of
from libs.runtime.env import env_float, env_int, nats_url
from libs.runtime.events import EventPublisher
from libs.runtime.files import FileStore
from libs.runtime.jetstream import ensure_stream
from libs.runtime.kv_mirror import open_bucket
from libs.runtime.nats_conn import connect_nats, shutdown_nats
from libs.runtime.tracing import Tracing
from services.jobs.api import JobsApi
from services.jobs.batches import Batches
from services.jobs.caps import Caps
from services.jobs.evals import Evals
from services.jobs.generations import Generations
from services.jobs.inference import RouterClient
from services.jobs.kinds import JobKind, JobsContext
from services.jobs.metrics import JobsMetrics
from services.jobs.records import Records
from services.jobs.replays import Replays
from services.jobs.retention import Retention
from services.jobs.worker import Worker

log = structlog.get_logger()


class JobsService:
    def __init__(self) -> None:
        self._tracing = Tracing("jobs")
        self._nc: Client | None = None
        self._workers: list[Worker] = []
        self._kinds: list[JobKind] = []
        self._subscription: Subscription | None = None
        self._caps = Caps()
        self.metrics = JobsMetrics()

    @property
    def ready(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        self._nc = nc = await connect_nats(nats_url(), "switchboard-jobs", on_reconnect=self._caps.resync)
        js = nc.jetstream()
        self.metrics.start(js)
        await ensure_stream(js, streams.JOBS)
        await ensure_stream(js, streams.EVENTS)
        try:  # the consumer before runs and polls were split; its filter overlaps both
            await js.delete_consumer(subjects.STREAM_JOBS, subjects.JOBS_LEGACY_CONSUMER)
        except NotFoundError:
            pass
        router = RouterClient(nc, env_float("SWITCHBOARD_REQUEST_TIMEOUT_S", 130.0), self._tracing)
        blobs = BlobStore(js, subjects.OBJ_FILES)
        await blobs.start()
        await self._caps.start(js)  # spend caps, checked before each batch line and eval run
        files = await FileStore.open(js, blobs)
        ctx = JobsContext(nc=nc, js=js, router=router, blobs=blobs, events=EventPublisher(js))
        eval_records = Records(await open_bucket(js, subjects.KV_EVALS), evals_http.decode_view)
        replay_records = Records(await open_bucket(js, subjects.KV_REPLAYS), replays_http.decode_view)
        evals = Evals(nc, eval_records, await open_bucket(js, subjects.KV_EVAL_WINNERS), router,
                      concurrency=env_int("SWITCHBOARD_EVAL_CONCURRENCY", 8), caps=self._caps, files=files)
        replays = Replays(nc, replay_records, router)
        self._kinds = [Generations(ctx), Batches(ctx, self._caps), Retention(ctx)]
        for kind in self._kinds:
            await kind.start()
        api = JobsApi(evals, eval_records, replays, replay_records,
                      {op: answer for kind in self._kinds for op, answer in kind.ops.items()})

        async def on_msg(msg: Msg) -> None:
            try:
                answer = await api.answer(msg.data)
            except Exception as exc:
                log.exception("jobs_call_failed")
                answer = failure_of(exc, "jobs service")
            await msg.respond(encode(answer))

        async def run_eval(data: bytes) -> None:
            await evals.run(jobs_bus.decode_eval_work(data))

        async def run_replay(data: bytes) -> None:
            await replays.run(jobs_bus.decode_replay_work(data))

        runs = {subjects.JOBS_WORK_EVAL: run_eval, subjects.JOBS_WORK_REPLAY: run_replay}
        give_up = {subjects.JOBS_WORK_EVAL: evals.give_up, subjects.JOBS_WORK_REPLAY: replays.give_up}
        polls = {}
        for kind in self._kinds:
            runs.update(kind.runs)
            polls.update(kind.polls)
            give_up.update(kind.give_up)
        self._subscription = await nc.subscribe(subjects.JOBS_API, queue=subjects.JOBS_QUEUE, cb=on_msg)
        ack_wait_s = env_float("SWITCHBOARD_JOBS_ACK_WAIT_S", 30.0)
        self._workers = [
            Worker(js, runs, give_up, concurrency=env_int("SWITCHBOARD_JOBS_CONCURRENCY", 4), ack_wait_s=ack_wait_s),
            # A poll is one short provider call: many at once, none held while the provider works.
            Worker(js, polls, give_up, concurrency=env_int("SWITCHBOARD_JOBS_POLL_CONCURRENCY", 64),
                   ack_wait_s=ack_wait_s, durable=subjects.JOBS_POLL_CONSUMER,
                   filter_subject=f"{subjects.JOBS_POLLS_PREFIX}.>", max_deliver=None),
        ]
        for worker in self._workers:
            worker.start()
        await nc.flush()
        log.info("jobs_ready")

    async def stop(self) -> None:
        await self.metrics.stop()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # the connection may already be gone
                log.warning("unsubscribe_failed", error=repr(exc))
        for worker in self._workers:
            await worker.stop()
        for kind in self._kinds:
            await kind.stop()
        await self._caps.stop()
        if self._nc is not None:
            await shutdown_nats(self._nc)
        self._tracing.shutdown()
