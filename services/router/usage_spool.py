"""The router's usage write-ahead log: what it owes the USAGE stream, on local disk.

Each replica appends to its own segment files `<replica>.<seq>.wal` in one
directory (several replicas may share it), and holds an exclusive flock on
`<replica>.lock` for as long as it lives. Three records, each framed as
length + CRC32 + msgpack:

- an event (with its snapshot), written by `log_event` before the reply leaves
  the process, so a replica killed right after answering still owes it;
- a seal: the last `count` events form the batch published as `msg_id`;
- an ack: JetStream stored `msg_id` (it may sit in a later segment).

A segment is rotated after a seal once it is large, and deleted, oldest first,
once every batch in it is acknowledged; a clean stop with nothing owed leaves no
file. Whatever a dead replica left (its lock is free) is adopted by the next
replica that looks: `orphans()` / `read_orphan()` give back its batches that have
no ack, with the msg ids they were published under, so JetStream's duplicate
window drops the ones that did arrive, and the ledger's insert (idempotent by
request id) drops them when the replay comes later than that window.

Writes are plain write(2) calls without fsync: the data survives the process
(the kernel holds it), not a power cut or a kernel crash.
"""

import fcntl
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import structlog

from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import UsageBatch, UsageEvent

log = structlog.get_logger()
SEGMENT_BYTES = 1024 * 1024
_FRAME = struct.Struct("<II")  # payload length, CRC32 of the payload
# Larger than any record can be (a batch's snapshots fit in one NATS message): a torn length.
_MAX_RECORD_BYTES = 64 * 1024 * 1024


class EventRecord(msgspec.Struct, tag="e", array_like=True):
    event: UsageEvent
    snapshot: Snapshot | None = None


class SealRecord(msgspec.Struct, tag="s", array_like=True):
    msg_id: str
    count: int


class AckRecord(msgspec.Struct, tag="a", array_like=True):
    msg_id: str


Record = EventRecord | SealRecord | AckRecord


class Segment:
    """One of this replica's segment files and the sealed batches in it not yet acknowledged."""

    def __init__(self, seq: int, path: Path) -> None:
        self.seq = seq
        self.path = path
        self.closed = False
        self.unacked: set[str] = set()
        self.held: set[str] = set()  # unacked batches the publisher has in memory; the rest are spilled

    @property
    def spilled(self) -> bool:
        return len(self.unacked) > len(self.held)  # held is a subset of unacked


class Orphan:
    """A dead replica's files, locked by us while we adopt them."""

    def __init__(self, replica: str, lock_fd: int, lock_path: Path, segments: list[Path]) -> None:
        self.replica = replica
        self.lock_fd = lock_fd
        self.lock_path = lock_path
        self.segments = segments


def _segment_seq(path: Path) -> int:
    try:
        return int(path.name.split(".")[1])
    except (IndexError, ValueError):
        return -1


def _records(path: Path) -> Iterator[Record]:
    """A segment's records in order, up to the first torn or unreadable one (a write cut short)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    decoder = msgspec.msgpack.Decoder(Record)
    offset = 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        body = data[start:start + length]
        if length > _MAX_RECORD_BYTES or len(body) < length or zlib.crc32(body) != crc:
            log.warning("usage_spool_torn_tail", path=str(path), offset=offset, size=len(data))
            return
        try:
            yield decoder.decode(body)
        except msgspec.DecodeError:
            log.error("usage_spool_bad_record", path=str(path), offset=offset)
            return
        offset = start + length


def _batches(paths: list[Path], skip: set[str]) -> Iterator[tuple[str | None, UsageBatch]]:
    """Sealed batches whose msg id is not in `skip`, then the unsealed tail (msg id None)."""
    events: list[EventRecord] = []
    for path in paths:
        for record in _records(path):
            if isinstance(record, EventRecord):
                events.append(record)
            elif isinstance(record, SealRecord):
                # Events before the last `count` belong to a batch whose own seal failed to be
                # written (a disk error): that batch was kept in memory only.
                sealed = events[len(events) - record.count:] if record.count else []
                events = []
                if record.msg_id not in skip:
                    yield record.msg_id, _batch(sealed)
    if events:
        yield None, _batch(events)


def _batch(records: list[EventRecord]) -> UsageBatch:
    return UsageBatch([r.event for r in records], [r.snapshot for r in records if r.snapshot is not None])


class Spool:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.replica = secrets.token_hex(6)
        self._segment_bytes = segment_bytes
        self._encode = msgspec.msgpack.Encoder().encode
        self._segments: list[Segment] = []
        self._fd = -1
        self._size = 0
        self._lock_fd = -1
        self._open_events = 0  # events logged since the last seal
        self._broken = False  # the last write failed; logged once per failure streak

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Locked before it gets its name, so no visible lock file is ever free while its owner lives.
        temp = self.directory / f".new-{self.replica}"
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temp, self._lock_path(self.replica))
        self._lock_fd = fd
        self._open_segment(0)

    def close(self, keep: bool) -> None:
        """Release the files; unless `keep` (something is still owed), delete them first."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not keep:
            for segment in self._segments:
                segment.path.unlink(missing_ok=True)
            self._segments = []
            self._lock_path(self.replica).unlink(missing_ok=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- the write side --------------------------------------------------------------

    def log_event(self, event: UsageEvent, snapshot: Snapshot | None) -> None:
        if self._write(EventRecord(event, snapshot)):
            self._open_events += 1

    def log_seal(self, msg_id: str, count: int) -> Segment | None:
        """Seal the last `count` events as batch `msg_id`; its segment, or None when not durable."""
        durable = self._open_events >= count and self._write(SealRecord(msg_id, count))
        self._open_events = 0
        if not durable:
            return None
        segment = self._segments[-1]
        segment.unacked.add(msg_id)
        if self._size >= self._segment_bytes:
            self.rotate()
        return segment

    def log_ack(self, segment: Segment, msg_id: str) -> None:
        self._write(AckRecord(msg_id))
        segment.unacked.discard(msg_id)
        segment.held.discard(msg_id)
        # Oldest first: a segment's acks may sit in later segments, which must outlive it.
        while len(self._segments) > 1 and self._segments[0].closed and not self._segments[0].unacked:
            self._segments.pop(0).path.unlink(missing_ok=True)

    def rotate(self) -> None:
        """Start a new segment (callers seal first: a batch never straddles two segments)."""
        os.close(self._fd)
        self._segments[-1].closed = True
        self._open_segment(self._segments[-1].seq + 1)

    # -- what is owed ----------------------------------------------------------------

    @property
    def current(self) -> Segment:
        return self._segments[-1]

    def spilled_segments(self) -> list[Segment]:
        return [segment for segment in self._segments if segment.spilled]

    def owes(self) -> bool:
        return any(segment.unacked for segment in self._segments)

    def read_spilled(self, segment: Segment) -> list[tuple[str, UsageBatch]]:
        """The spilled batches of one of our closed segments, to be published from memory again."""
        wanted = segment.unacked - segment.held
        return [(msg_id, batch) for msg_id, batch in _batches([segment.path], set())
                if msg_id is not None and msg_id in wanted]

    # -- dead replicas ---------------------------------------------------------------

    def orphans(self) -> Iterator[Orphan]:
        """Each dead replica's files, locked by us until `release()`."""
        names = [p.name for p in self.directory.iterdir() if not p.name.startswith(".")]
        replicas = sorted({n.split(".")[0] for n in names if n.endswith((".wal", ".lock"))} - {self.replica})
        for replica in replicas:
            lock_path = self._lock_path(replica)
            # Created if missing: its segments outlived it (an adopter died after deleting it).
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # alive, or being adopted by someone else
                os.close(fd)
                continue
            segments = sorted(self.directory.glob(f"{replica}.*.wal"), key=_segment_seq)
            yield Orphan(replica, fd, lock_path, segments)

    def read_orphan(self, orphan: Orphan) -> Iterator[tuple[str | None, UsageBatch]]:
        acked = {r.msg_id for path in orphan.segments for r in _records(path) if isinstance(r, AckRecord)}
        yield from _batches(orphan.segments, acked)

    def discard(self, orphan: Orphan) -> None:
        """The orphan's batches are in our own log now: delete its files."""
        for path in orphan.segments:
            path.unlink(missing_ok=True)
        orphan.lock_path.unlink(missing_ok=True)

    @staticmethod
    def release(orphan: Orphan) -> None:
        os.close(orphan.lock_fd)

    # -- plumbing ----------------------------------------------------------------------

    def _lock_path(self, replica: str) -> Path:
        return self.directory / f"{replica}.lock"

    def _open_segment(self, seq: int) -> None:
        path = self.directory / f"{self.replica}.{seq:08d}.wal"
        self._fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._size = 0
        self._segments.append(Segment(seq, path))

    def _write(self, record: Record) -> bool:
        body = self._encode(record)
        frame = _FRAME.pack(len(body), zlib.crc32(body)) + body
        try:
            written = os.write(self._fd, frame)
            while written < len(frame):  # short writes happen only on a full disk; finish or fail
                written += os.write(self._fd, frame[written:])
        except OSError as exc:
            if not self._broken:
                log.error("usage_spool_write_failed", error=repr(exc), spool=str(self.directory))
            self._broken = True
            try:  # a frame cut short would hide every record after it from a reader
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            return False
        self._broken = False
        self._size += len(frame)
        return True
