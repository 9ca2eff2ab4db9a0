"""The generation state machine (services/jobs/generation_polls.py) step by step, with the
router and the KV bucket replaced by in-memory fakes: submit, poll, fetch, transient
errors and their limit, the deadline, and a cancel racing each step."""

import asyncio
import time
from collections.abc import Callable

import msgspec
import pytest

from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus import longrun
from libs.contracts.bus.inference import Cost, DispatchMeta, Principal
from libs.contracts.errors import ErrorBody
from libs.contracts.http import jobs as http
from services.jobs.generation_polls import GenerationPolls, PollSettings
from services.jobs.job_records import Versioned
from services.jobs.longrun_client import StepFailed
from services.jobs.worker import Later

HANDLE = longrun.LongRunHandle("sim", "sim/video", "sim-video", "up_1")
PRINCIPAL = Principal("acct", "key_1")


class FakeStore:
    """JobStore's compare-and-set semantics over a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[http.JobRecord, int]] = {}
        self.before_put: Callable[[], None] | None = None

    async def get(self, account_id: str, job_id: str) -> Versioned | None:
        row = self.rows.get(job_id)
        return None if row is None else Versioned(msgspec.structs.replace(row[0]), row[1])

    async def put(self, found: Versioned, record: http.JobRecord) -> Versioned | None:
        if self.before_put is not None:
            hook, self.before_put = self.before_put, None
            hook()
        row = self.rows.get(record.id)
        if row is None or row[1] != found.revision:
            return None
        self.rows[record.id] = (record, row[1] + 1)
        return Versioned(record, row[1] + 1)

    def cancel(self, job_id: str) -> None:
        record, revision = self.rows[job_id]
        self.rows[job_id] = (msgspec.structs.replace(record, status="cancelled", stage=""), revision + 1)


class FakeRouter:
    def __init__(self, answers: dict[str, list[longrun.LongRunStatus | StepFailed]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def call(self, op: str, job_id: str, principal: Principal, **_: object
                   ) -> longrun.LongRunStatus | StepFailed:
        self.calls.append(op)
        queue = self.answers.get(op, [])
        return queue.pop(0) if len(queue) > 1 else queue[0] if queue else longrun.LongRunStatus(state="cancelled")


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str]] = []

    async def emit(self, type_: str, account_id: str, data: dict, event_id: str | None = None, **_: object) -> bool:
        self.emitted.append((type_, data["id"]))
        return True


def _job(store: FakeStore, created_at: int | None = None) -> bytes:
    now = int(time.time()) if created_at is None else created_at
    record = http.JobRecord(id="job_1", account_id="acct", principal=PRINCIPAL, modality="video", model="",
                            body=b"{}", created_at=now, updated_at=now)
    store.rows[record.id] = (record, 1)
    return jobs_bus.encode(jobs_bus.JobWork("job_1", "acct"))


def _polls(router: FakeRouter, store: FakeStore, events: FakeEvents, **settings: float) -> GenerationPolls:
    return GenerationPolls(store, router, events, PollSettings(base_s=0.5, max_s=5.0, **settings))  # type: ignore[arg-type]


def _run(polls: GenerationPolls, work: bytes) -> Later | None:
    return asyncio.run(polls.handle(work))


PROCESSING = longrun.LongRunStatus(state="processing", handle=HANDLE, progress=40.0)
COMPLETED = longrun.LongRunStatus(state="completed", handle=HANDLE)
FETCHED = longrun.LongRunStatus(
    state="completed", handle=HANDLE, outputs=[longrun.JobOutput("video.mp4", "video/mp4", 10, "jobs/acct/job_1/v")],
    meta=DispatchMeta("sim/video", "sim", cost=Cost(total_micros=1234)))


def test_a_job_goes_from_queued_to_completed_one_step_per_delivery() -> None:
    store, events = FakeStore(), FakeEvents()
    router = FakeRouter({"submit": [PROCESSING], "poll": [PROCESSING, COMPLETED], "fetch": [FETCHED]})
    polls, work = _polls(router, store, events), _job(store)
    assert _run(polls, work) == Later(0.5)  # submitted: poll again soon
    assert store.rows["job_1"][0].status == "processing" and store.rows["job_1"][0].handle == HANDLE
    later = _run(polls, work)
    assert isinstance(later, Later) and later.delay_s > 0.5  # the interval grows
    assert store.rows["job_1"][0].progress == 40.0
    assert _run(polls, work) is None  # completed and fetched: acknowledged
    done = store.rows["job_1"][0]
    assert (done.status, done.cost_micros, len(done.outputs)) == ("completed", 1234, 1)
    assert router.calls == ["submit", "poll", "poll", "fetch"]
    assert events.emitted == [("job.completed", "job_1")]
    assert _run(polls, work) is None and router.calls[-1] == "fetch"  # a redelivery neither fetches nor bills


def test_a_cancel_before_submit_means_nothing_is_submitted() -> None:
    store, events = FakeStore(), FakeEvents()
    router = FakeRouter({"submit": [PROCESSING]})
    polls, work = _polls(router, store, events), _job(store)
    store.before_put = lambda: store.cancel("job_1")  # the cancel wins the claim
    assert _run(polls, work) is None
    assert router.calls == [] and store.rows["job_1"][0].status == "cancelled" and events.emitted == []


def test_a_cancel_during_submit_stops_the_provider_job() -> None:
    store, events = FakeStore(), FakeEvents()
    router = FakeRouter({"submit": [PROCESSING]})
    polls, work = _polls(router, store, events), _job(store)
    store.rows["job_1"] = (msgspec.structs.replace(store.rows["job_1"][0], stage="submitting"), 1)
    store.before_put = lambda: store.cancel("job_1")  # cancelled while the provider was accepting it
    assert _run(polls, work) is None
    assert router.calls == ["submit", "cancel"] and store.rows["job_1"][0].status == "cancelled"


def test_a_cancel_racing_completion_is_never_fetched() -> None:
    store, events = FakeStore(), FakeEvents()
    router = FakeRouter({"submit": [PROCESSING], "poll": [COMPLETED], "fetch": [FETCHED]})
    polls, work = _polls(router, store, events), _job(store)
    _run(polls, work)
    store.before_put = lambda: store.cancel("job_1")  # lands between the poll and the fetch claim
    assert _run(polls, work) is None
    assert "fetch" not in router.calls and store.rows["job_1"][0].status == "cancelled" and events.emitted == []


def test_provider_failure_fails_the_job_with_its_reason() -> None:
    store, events = FakeStore(), FakeEvents()
    failed = longrun.LongRunStatus(state="failed", handle=HANDLE,
                                   error=ErrorBody("content policy", "provider_error", 400))
    router = FakeRouter({"submit": [PROCESSING], "poll": [failed]})
    polls, work = _polls(router, store, events), _job(store)
    _run(polls, work)
    assert _run(polls, work) is None
    record = store.rows["job_1"][0]
    assert record.status == "failed" and record.error == http.JobError("content policy", "provider_error")
    assert events.emitted == [("job.failed", "job_1")] and "fetch" not in router.calls


@pytest.mark.parametrize("transient", [True, False])
def test_router_errors_are_retried_with_backoff_up_to_a_limit(transient: bool) -> None:
    store, events = FakeStore(), FakeEvents()
    down = StepFailed(ErrorBody("no router", "service_unavailable_error", 503 if transient else 404), transient)
    router = FakeRouter({"submit": [down]})
    polls, work = _polls(router, store, events, max_errors=3), _job(store)
    if transient:
        delays = [_run(polls, work), _run(polls, work)]
        assert all(isinstance(d, Later) for d in delays) and delays[1].delay_s > delays[0].delay_s  # type: ignore[union-attr]
        assert store.rows["job_1"][0].attempts == 2 and store.rows["job_1"][0].status == "queued"
    assert _run(polls, work) is None
    record = store.rows["job_1"][0]
    assert record.status == "failed" and record.error is not None and record.error.message == "no router"


def test_a_job_past_its_deadline_fails_and_is_stopped() -> None:
    store, events = FakeStore(), FakeEvents()
    router = FakeRouter({"submit": [PROCESSING], "poll": [PROCESSING]})
    polls, work = _polls(router, store, events, deadline_s=60), _job(store, created_at=int(time.time()) - 120)
    store.rows["job_1"] = (msgspec.structs.replace(store.rows["job_1"][0], status="processing", handle=HANDLE), 1)
    assert _run(polls, work) is None
    record = store.rows["job_1"][0]
    assert record.status == "failed" and record.error is not None and record.error.code == "deadline_exceeded"
    assert router.calls == ["cancel"]


def test_the_provider_hint_sets_the_next_poll() -> None:
    settings = PollSettings(base_s=1.0, max_s=10.0)
    assert settings.next_poll(0, 3.0) == 3.0
    assert [settings.next_poll(n, None) for n in (0, 1, 10)] == [1.0, 1.5, 10.0]
