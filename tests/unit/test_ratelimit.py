"""The edge rate limiter against a real nats-server: limits hold across replicas that only
share NATS, windows slide, idle keys are forgotten. Window ids come from an injected clock,
so no test depends on where in the wall-clock minute it runs."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client

from libs.contracts import subjects
from libs.contracts.bus.ratelimit import RateSync
from services.edge.ratelimit import RateLimiter
from tools.cli.processes import free_port, start_nats

BASE = 29_000_000 * 60.0  # the start of a window
SYNC_S = 0.1


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


MakeLimiter = Callable[[str, Clock], Awaitable[RateLimiter]]


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_nats(Path(tmp_path_factory.mktemp("ratelimit")), port, None)
    yield f"nats://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
async def connections(nats_url: str) -> AsyncIterator[Callable[[], Awaitable[Client]]]:
    opened: list[Client] = []

    async def connect() -> Client:
        nc = await nats.connect(nats_url)
        opened.append(nc)
        return nc

    yield connect
    for nc in opened:
        await nc.close()


@pytest.fixture
async def make_limiter(connections: Callable[[], Awaitable[Client]]) -> AsyncIterator[MakeLimiter]:
    started: list[RateLimiter] = []

    async def make(replica_id: str, clock: Clock) -> RateLimiter:
        limiter = RateLimiter(await connections(), replica_id, SYNC_S, clock)  # one connection each
        await limiter.start()
        started.append(limiter)
        return limiter

    yield make
    for limiter in started:
        await limiter.stop()


def new_key() -> str:
    return f"key_{uuid.uuid4().hex[:12]}"  # unique per test: reports from other tests never match


async def eventually(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def admit(limiter: RateLimiter, key: str, attempts: int, rpm: int | None = None, tpm: int | None = None) -> int:
    return sum(limiter.check_request(key, rpm, tpm) is None for _ in range(attempts))


async def test_single_replica_admits_exactly_rpm_then_gives_retry_after(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    limiter = await make_limiter("a", clock)
    key = new_key()
    assert admit(limiter, key, 5, rpm=5) == 5
    retry = limiter.check_request(key, 5, None)
    # 5 in this window: wait out its 59 s, then 12 s of the next for 5 * (1 - f) + 1 <= 5.
    assert retry == 71
    assert limiter.check_request(key, 5, None) == 71  # a rejection is not counted
    clock.t += retry
    assert admit(limiter, key, 3, rpm=5) == 1


async def test_two_replicas_share_one_limit_with_paced_bursts(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    a, b = await make_limiter("a", clock), await make_limiter("b", clock)
    key, burst = new_key(), 15
    total = 0
    for round_ in range(8):
        total += admit((a, b)[round_ % 2], key, burst, rpm=60)
        await asyncio.sleep(2.5 * SYNC_S)  # each burst is reported before the other replica's next one
    # Documented bound: (replicas - 1) x what one replica admits within a sync interval (one burst).
    assert 60 <= total <= 60 + burst
    await eventually(lambda: a.usage(key)[0] == b.usage(key)[0] == total)
    assert a.check_request(key, 60, None) is not None
    assert b.check_request(key, 60, None) is not None


async def test_two_replicas_fast_interleaved_burst_stays_within_bound(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    a, b = await make_limiter("a", clock), await make_limiter("b", clock)
    key = new_key()
    # 200 alternating calls with no await in between: neither replica hears from the other.
    total = sum(limiter.check_request(key, 60, None) is None for _ in range(100) for limiter in (a, b))
    # Worst case of the bound: one replica can admit the whole limit within one sync interval.
    assert 60 <= total <= 60 + (2 - 1) * 60
    await eventually(lambda: a.usage(key)[0] == b.usage(key)[0] == total)
    assert a.check_request(key, 60, None) is not None
    assert b.check_request(key, 60, None) is not None


async def test_window_rollover_decays_previous_window(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    limiter = await make_limiter("a", clock)
    key = new_key()
    assert admit(limiter, key, 12, rpm=10) == 10
    clock.t = BASE + 60  # next window, previous weighs 1
    assert limiter.check_request(key, 10, None) == 6  # 10 * (1 - f) + 1 <= 10 once f >= 0.1
    clock.t += 6
    assert admit(limiter, key, 5, rpm=10) == 1  # 10 * 0.9 = 9, + 1 admitted
    clock.t = BASE + 90  # 1 + 10 * 0.5 = 6 -> room for 4
    assert admit(limiter, key, 10, rpm=10) == 4
    clock.t = BASE + 181  # two windows on: nothing weighs any more
    assert admit(limiter, key, 12, rpm=10) == 10


async def test_deltas_of_an_ended_window_reach_other_replicas_as_previous(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 59.5)
    a, b = await make_limiter("a", clock), await make_limiter("b", clock)
    key = new_key()
    assert admit(a, key, 5, rpm=100) == 5
    clock.t = BASE + 60.5  # the window ends before a reports
    assert admit(a, key, 1, rpm=100) == 1
    await eventually(lambda: b.usage(key)[0] > 0)
    await asyncio.sleep(2 * SYNC_S)
    assert b.usage(key)[0] == pytest.approx(1 + 5 * (1 - 0.5 / 60))
    assert b.usage(key) == a.usage(key)


async def test_tokens_recorded_on_one_replica_limit_the_other(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    a, b = await make_limiter("a", clock), await make_limiter("b", clock)
    key = new_key()
    assert a.check_request(key, None, 1000) is None
    a.record_tokens(key, 600)
    await eventually(lambda: b.usage(key)[1] == 600)
    assert b.check_request(key, None, 1000) is None  # 600 < 1000
    b.record_tokens(key, 500)
    await eventually(lambda: a.usage(key)[1] == 1100)
    for limiter in (a, b):
        retry = limiter.check_request(key, None, 1000)
        assert retry is not None and retry >= 1


async def test_unlimited_keys_are_never_counted(make_limiter: MakeLimiter,
                                                connections: Callable[[], Awaitable[Client]]) -> None:
    spy = await connections()
    seen: list[RateSync] = []

    async def on_report(msg: nats.aio.msg.Msg) -> None:
        seen.append(msgspec.msgpack.decode(msg.data, type=RateSync))

    await spy.subscribe(subjects.RATE_SYNC, cb=on_report)
    await spy.flush()
    limiter = await make_limiter("a", Clock(BASE + 1))
    key = new_key()
    assert admit(limiter, key, 1000) == 1000
    limiter.record_tokens(key, 10_000)
    assert limiter.tracked_keys() == 0
    assert limiter.usage(key) == (0.0, 0.0)
    await asyncio.sleep(3 * SYNC_S)
    assert not [r for r in seen if key in r.deltas]


async def test_own_reports_are_not_counted_twice(make_limiter: MakeLimiter,
                                                 connections: Callable[[], Awaitable[Client]]) -> None:
    spy = await connections()
    reported: list[RateSync] = []

    async def on_report(msg: nats.aio.msg.Msg) -> None:
        report = msgspec.msgpack.decode(msg.data, type=RateSync)
        if report.replica == "solo":
            reported.append(report)

    await spy.subscribe(subjects.RATE_SYNC, cb=on_report)
    await spy.flush()
    limiter = await make_limiter("solo", Clock(BASE + 1))
    key = new_key()
    assert admit(limiter, key, 10, rpm=20) == 10
    await eventually(lambda: any(key in r.deltas for r in reported))  # the report went out (and came back)
    await asyncio.sleep(2 * SYNC_S)
    assert limiter.usage(key) == (10.0, 0.0)
    assert admit(limiter, key, 15, rpm=20) == 10


async def test_keys_idle_for_two_windows_are_forgotten(make_limiter: MakeLimiter) -> None:
    clock = Clock(BASE + 1)
    limiter = await make_limiter("a", clock)
    old, recent = new_key(), new_key()
    limiter.check_request(old, 10, None)
    clock.t = BASE + 61
    limiter.check_request(recent, 10, None)
    assert limiter.tracked_keys() == 2
    clock.t = BASE + 121  # `old` idle for two windows, `recent` for one
    await eventually(lambda: limiter.tracked_keys() == 1)
    assert limiter.usage(recent)[0] > 0
    clock.t = BASE + 181
    await eventually(lambda: limiter.tracked_keys() == 0)


class _Bus:
    """Only what the fail-open bookkeeping reads of a connection."""

    is_connected = True


def test_a_replica_cut_off_from_nats_fails_open_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    bus = _Bus()
    limiter = RateLimiter(bus, "r1")  # type: ignore[arg-type]
    limiter._note_connection()
    assert limiter.open_intervals == 0
    bus.is_connected = False
    limiter._note_connection()
    limiter._note_connection()
    assert limiter.open_intervals == 2
    # Still limiting on its own counts: a key over its limit here is refused here.
    assert limiter.check_request("k", 1, None) is None
    assert limiter.check_request("k", 1, None) is not None
    bus.is_connected = True
    limiter._note_connection()
    assert limiter.open_intervals == 2
