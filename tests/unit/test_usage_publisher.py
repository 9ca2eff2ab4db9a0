"""The router's usage outbox through NATS outages, restarts and crashes, against a
stand-in for JetStream that drops a repeated Nats-Msg-Id like the real stream."""

import asyncio
import struct
from pathlib import Path

import msgspec
import pytest

from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageEvent, decode_batch
from services.router.usage_publisher import UsagePublisher, batch_msg_id
from services.router.usage_spool import AckRecord, Record


class FakeJetStream:
    def __init__(self) -> None:
        self.down = False
        self.fail_next = 0
        self.attempts: list[str] = []  # msg id of every publish call
        self.stored: dict[str, list[str]] = {}  # msg id -> request ids, once each
        self.snapshots: set[str] = set()

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str], **_: float) -> None:
        msg_id = headers["Nats-Msg-Id"]
        self.attempts.append(msg_id)
        await asyncio.sleep(0)
        if self.down or self.fail_next:
            self.fail_next = max(self.fail_next - 1, 0)
            raise ConnectionError("nats is down")
        batch = decode_batch(payload)
        assert batch_msg_id(batch.events) == msg_id  # the id always names the same requests
        if msg_id not in self.stored:
            self.stored[msg_id] = [e.request_id for e in batch.events]
            self.snapshots |= {s.request_id for s in batch.snapshots}

    def request_ids(self) -> list[str]:
        return [rid for ids in self.stored.values() for rid in ids]


def _event(i: int) -> UsageEvent:
    return UsageEvent(request_id=f"req_{i:05d}", ts_ms=1, account_id="acct", key_id="k", operation="chat",
                      requested_model="m/x", model="m/x", provider="m", status=200, cost_micros=i)


def _publisher(js: FakeJetStream, spool: Path, **kwargs: object) -> UsagePublisher:
    publisher = UsagePublisher(js, spool, **kwargs)  # type: ignore[arg-type]
    publisher.start()
    return publisher


async def _crash(publisher: UsagePublisher) -> None:
    """What SIGKILL leaves: the files as written, the lock free, nothing flushed."""
    for task in publisher._tasks:
        task.cancel()
    await asyncio.gather(*publisher._tasks, return_exceptions=True)
    publisher.spool.close(keep=True)


async def _until(check, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_batches_are_published_and_the_spool_is_gone_after_a_clean_stop(tmp_path: Path) -> None:
    js = FakeJetStream()
    publisher = _publisher(js, tmp_path, max_batch=10)
    for i in range(95):
        publisher.submit(_event(i), Snapshot(request_id=f"req_{i:05d}", ts_ms=1, account_id="acct",
                                             operation="chat", model="m/x") if i % 2 else None)
    await _until(lambda: len(js.request_ids()) == 95)
    await publisher.stop()
    assert sorted(js.request_ids()) == [f"req_{i:05d}" for i in range(95)]
    assert len(js.snapshots) == 47 and len(js.stored) == 10
    assert _files(tmp_path) == []


async def test_retries_keep_the_message_id(tmp_path: Path) -> None:
    js = FakeJetStream()
    js.fail_next = 3
    publisher = _publisher(js, tmp_path)
    publisher.submit(_event(1))
    await _until(lambda: js.stored)
    await publisher.stop()
    assert len(js.attempts) == 4 and len(set(js.attempts)) == 1


async def test_an_outage_spills_beyond_the_memory_bound_and_replays_everything_once(tmp_path: Path) -> None:
    js = FakeJetStream()
    js.down = True
    publisher = _publisher(js, tmp_path, max_batch=5, max_pending_bytes=4_000, workers=2)
    for i in range(400):
        publisher.submit(_event(i))
        if i % 50 == 0:
            await asyncio.sleep(0.001)
    publisher._seal()
    assert publisher.spilled > 0 and publisher._held_bytes <= 4_000 and publisher.dropped == 0
    js.down = False  # NATS is back
    await _until(lambda: len(js.request_ids()) == 400)
    await publisher.stop()
    assert sorted(js.request_ids()) == [f"req_{i:05d}" for i in range(400)]
    assert _files(tmp_path) == []


async def test_a_crashed_replica_is_adopted_and_acked_batches_are_not_sent_again(tmp_path: Path) -> None:
    js = FakeJetStream()
    first = _publisher(js, tmp_path, max_batch=10, linger_s=60)
    for i in range(30):
        first.submit(_event(i))  # three sealed batches
    await _until(lambda: len(js.stored) == 3)
    js.down = True
    for i in range(30, 55):
        first.submit(_event(i))  # two sealed batches stuck, five events not sealed yet
    await asyncio.sleep(0.05)
    await _crash(first)
    # The last write was cut short by the kill.
    _tear_last_write(tmp_path)
    js.down = False
    sent_before = len(js.attempts)
    second = _publisher(js, tmp_path)
    await _until(lambda: len(js.request_ids()) == 55)
    await second.stop()
    assert sorted(js.request_ids()) == [f"req_{i:05d}" for i in range(55)]
    # Only the two stuck batches (same ids as before) and the unsealed tail went out again.
    resent = js.attempts[sent_before:]
    assert len(resent) == 3 and set(resent[:2]) <= set(js.attempts[:sent_before])
    assert _files(tmp_path) == []


async def test_stop_while_nats_is_down_keeps_the_spool_for_the_next_replica(tmp_path: Path) -> None:
    js = FakeJetStream()
    js.down = True
    first = _publisher(js, tmp_path)
    for i in range(20):
        first.submit(_event(i))
    await first.stop(grace_s=0.1)
    assert _files(tmp_path, ".wal") and not js.stored
    js.down = False
    second = _publisher(js, tmp_path)
    await _until(lambda: len(js.request_ids()) == 20)
    await second.stop()
    assert _files(tmp_path) == []


async def test_a_live_replica_is_never_adopted(tmp_path: Path) -> None:
    js = FakeJetStream()
    js.down = True
    first = _publisher(js, tmp_path, linger_s=60)
    first.submit(_event(1))
    second = _publisher(js, tmp_path, scan_interval_s=0.01)
    await asyncio.sleep(0.1)
    js.down = False
    await second.stop()
    assert not js.stored and any(name.startswith(first.spool.replica) for name in _files(tmp_path, ".wal"))
    await first.stop()
    assert js.request_ids() == ["req_00001"]


@pytest.mark.parametrize("replayed_after_window", [False, True])
async def test_a_replay_names_the_same_batches(tmp_path: Path, replayed_after_window: bool) -> None:
    """Inside the duplicate window the stream drops a replayed batch by its id; after it, the
    same request ids reach the ledger, whose insert ignores ids it holds."""
    js = FakeJetStream()
    first = _publisher(js, tmp_path, max_batch=4, linger_s=60)
    for i in range(8):
        first.submit(_event(i))
    await _until(lambda: len(js.stored) == 2)
    published = dict(js.stored)
    await _crash(first)
    _strip_acks(tmp_path)  # as if the acks had not been written
    if replayed_after_window:
        js.stored.clear()
    second = _publisher(js, tmp_path)
    await _until(lambda: len(js.stored) == 2)
    await second.stop()
    assert js.stored == published


def _files(directory: Path, suffix: str = "") -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(suffix))


def _tear_last_write(directory: Path) -> None:
    segment = directory / _files(directory, ".wal")[-1]
    segment.write_bytes(segment.read_bytes() + b"\x40\x00\x00\x00\x01\x02")


def _strip_acks(directory: Path) -> None:
    decode = msgspec.msgpack.Decoder(Record).decode
    for name in _files(directory, ".wal"):
        data, kept, offset = (directory / name).read_bytes(), [], 0
        while offset < len(data):
            (length,) = struct.unpack_from("<I", data, offset)
            frame = data[offset:offset + 8 + length]
            if not isinstance(decode(frame[8:]), AckRecord):
                kept.append(frame)
            offset += 8 + length
        (directory / name).write_bytes(b"".join(kept))
