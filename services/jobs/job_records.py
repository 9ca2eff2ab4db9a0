"""Async job records in KV `sb_jobs` (`<account>.<job id>`), read and written with their
revision: every change is a compare-and-set (`kv.update(last=revision)`), so a cancel
and a completing poll can never both win, whichever replica runs them."""

import time
from collections.abc import Callable

import msgspec
import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.http import jobs as http
from libs.contracts.ids import valid_id
from libs.runtime.kv_scan import scan_all

_TRIES = 8
log = structlog.get_logger()


class Versioned(msgspec.Struct):
    record: http.JobRecord
    revision: int


class Conflict(Exception):
    """The record kept changing under us (another replica writing it): give up this round."""


def _decoded(raw: bytes) -> http.JobRecord | None:
    # One unreadable record (written by an older or foreign writer) must not take the whole list down.
    try:
        return http.decode_record(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        log.warning("job_record_unreadable", error=str(exc))
        return None


def key_of(account_id: str, job_id: str) -> str:
    return f"{account_id}.{job_id}"


class JobStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, record: http.JobRecord) -> None:
        await self._kv.create(key_of(record.account_id, record.id), http.encode(record))

    async def get(self, account_id: str, job_id: str) -> Versioned | None:
        # A client's id reaches a KV key only once checked: `.`, `*`, `>` would widen it.
        if not valid_id(job_id) or not valid_id(account_id):
            return None
        try:
            entry = await self._kv.get(key_of(account_id, job_id))
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return Versioned(http.decode_record(entry.value), entry.revision)

    async def put(self, found: Versioned, record: http.JobRecord) -> Versioned | None:
        """Write `record` over the revision it was read at; None when someone wrote in between."""
        record.updated_at = int(time.time())
        try:
            revision = await self._kv.update(key_of(record.account_id, record.id), http.encode(record),
                                             last=found.revision)
        except KeyWrongLastSequenceError:
            return None
        return Versioned(record, revision)

    async def change(self, account_id: str, job_id: str,
                     edit: Callable[[http.JobRecord], http.JobRecord | None]) -> Versioned | None:
        """Read, `edit` (None: leave it as it is), write; again on a conflict. None if there is no record."""
        for _ in range(_TRIES):
            found = await self.get(account_id, job_id)
            if found is None:
                return None
            changed = edit(msgspec.structs.replace(found.record))
            if changed is None:
                return found
            written = await self.put(found, changed)
            if written is not None:
                return written
        raise Conflict(f"job {job_id} kept changing")

    async def delete(self, found: Versioned) -> bool:
        try:
            await self._kv.delete(key_of(found.record.account_id, found.record.id), last=found.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        return True

    async def list(self, account_id: str) -> list[http.JobRecord]:
        # A watch on the account's keys: the server filters, so the cost is this account's jobs.
        return [record for record in await scan_all(self._kv, f"{account_id}.*", _decoded) if record is not None]
