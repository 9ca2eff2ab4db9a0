"""The usage spool's files: rotation, deletion once acknowledged, adoption of a dead replica's."""

from pathlib import Path

from libs.contracts.bus.usage import UsageEvent
from services.router.usage_spool import Segment, Spool


def _event(i: int) -> UsageEvent:
    return UsageEvent(request_id=f"req_{i}", ts_ms=1, account_id="acct", key_id="k", operation="chat",
                      requested_model="m/x", model="m/x", provider="m", status=200)


def _sealed(spool: Spool, first: int, count: int) -> tuple[str, Segment]:
    for i in range(first, first + count):
        spool.log_event(_event(i), None)
    msg_id = f"batch-{first}"
    segment = spool.log_seal(msg_id, count)
    assert segment is not None
    return msg_id, segment


def test_segments_rotate_and_go_oldest_first_once_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=500)
    spool.open()
    batches = [_sealed(spool, i * 10, 10) for i in range(3)]  # each seal passes 500 bytes: three segments
    assert len(list(tmp_path.glob("*.wal"))) == 4
    (second_id, second_segment), (first_id, first_segment) = batches[1], batches[0]
    spool.log_ack(second_segment, second_id)
    assert len(list(tmp_path.glob("*.wal"))) == 4  # the oldest still owes its batch
    spool.log_ack(first_segment, first_id)
    assert len(list(tmp_path.glob("*.wal"))) == 2
    assert spool.owes()
    spool.log_ack(batches[2][1], batches[2][0])
    assert not spool.owes()
    spool.close(keep=False)
    assert list(tmp_path.iterdir()) == []


def test_a_dead_replicas_files_are_adopted_even_without_its_lock_file(tmp_path: Path) -> None:
    dead = Spool(tmp_path)
    dead.open()
    acked, segment = _sealed(dead, 0, 3)
    dead.log_ack(segment, acked)
    _sealed(dead, 3, 2)
    dead.log_event(_event(5), None)  # never sealed
    dead.close(keep=True)
    (tmp_path / f"{dead.replica}.lock").unlink()
    alive = Spool(tmp_path)
    alive.open()
    orphans = list(alive.orphans())
    assert [o.replica for o in orphans] == [dead.replica]
    batches = list(alive.read_orphan(orphans[0]))
    assert [(msg_id, [e.request_id for e in b.events]) for msg_id, b in batches] == [
        ("batch-3", ["req_3", "req_4"]), (None, ["req_5"])]
    alive.discard(orphans[0])
    alive.release(orphans[0])
    assert not list(alive.orphans())
    alive.close(keep=False)
    assert list(tmp_path.iterdir()) == []


def test_a_live_replica_is_not_an_orphan(tmp_path: Path) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    first.open()
    second.open()
    _sealed(first, 0, 1)
    assert not list(second.orphans())
    first.close(keep=True)
    orphans = list(second.orphans())
    assert [o.replica for o in orphans] == [first.replica]
    for orphan in orphans:
        second.release(orphan)
    second.close(keep=False)
