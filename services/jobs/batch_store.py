"""Where batches live: records in KV `sb_batches` (`<account>.<batch id>`) and finished
lines in KV `sb_batch_lines` (`<batch id>.<line index>`).

A record is changed by its runner (progress, status) and by the API (cancel) at once,
so every change is a read-modify-write on the KV revision, retried on conflict: a
cancel is never lost under a progress update, nor the reverse.
"""

from collections.abc import AsyncIterator, Callable

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from libs.contracts import subjects
from libs.contracts.http import batches as http
from libs.contracts.ids import valid_id
from libs.runtime.kv_mirror import open_bucket
from libs.runtime.kv_scan import scan, scan_all

LINES_TTL_S = 3 * 24 * 3600  # past any batch's window: lines of a batch nobody finished go away
_RETRIES = 20


class BatchStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> "BatchStore":
        return cls(await open_bucket(js, subjects.KV_BATCHES))

    @staticmethod
    def _key(account_id: str, batch_id: str) -> str:
        return f"{account_id}.{batch_id}"

    async def create(self, record: http.BatchRecord) -> None:
        await self._kv.create(self._key(record.account_id, record.batch.id), http.encode(record))

    async def get(self, account_id: str, batch_id: str) -> http.BatchRecord | None:
        if not valid_id(batch_id):  # a path id never widens into another key
            return None
        try:
            entry = await self._kv.get(self._key(account_id, batch_id))
        except KeyNotFoundError:
            return None
        return http.decode_record(entry.value) if entry.value else None

    async def update(self, account_id: str, batch_id: str,
                     change: Callable[[http.BatchRecord], bool]) -> http.BatchRecord | None:
        """Apply `change` to the current record and store it (when `change` returns True);
        the record as it now stands, or None when there is none."""
        key = self._key(account_id, batch_id)
        for _ in range(_RETRIES):
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None
            if not entry.value:
                return None
            record = http.decode_record(entry.value)
            if not change(record):
                return record
            try:
                await self._kv.update(key, http.encode(record), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return record
        raise RuntimeError(f"batch {batch_id}: too many concurrent updates")

    async def list(self, account_id: str) -> list[http.BatchRecord]:
        return await scan_all(self._kv, f"{account_id}.*", http.decode_record)

    async def delete(self, account_id: str, batch_id: str) -> None:
        await self._kv.delete(self._key(account_id, batch_id))


class LineStore:
    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext) -> "LineStore":
        return cls(js, await open_bucket(js, subjects.KV_BATCH_LINES, ttl_s=LINES_TTL_S))

    async def put(self, batch_id: str, result: http.LineResult) -> None:
        await self._kv.put(f"{batch_id}.{result.index}", http.encode_line(result))

    async def get(self, batch_id: str, index: int) -> http.LineResult | None:
        try:
            entry = await self._kv.get(f"{batch_id}.{index}")
        except KeyNotFoundError:
            return None
        return http.decode_line(entry.value) if entry.value else None

    async def finished(self, batch_id: str) -> AsyncIterator[http.LineResult]:
        """Every line of the batch already stored (a redelivered batch skips them), one at a time."""
        async for line in scan(self._kv, f"{batch_id}.*", http.decode_line):
            yield line

    async def purge(self, batch_id: str) -> None:
        """Forget a finished batch's lines at once (one purge of their subjects)."""
        try:
            await self._js.purge_stream(f"KV_{subjects.KV_BATCH_LINES}",
                                        subject=f"$KV.{subjects.KV_BATCH_LINES}.{batch_id}.>")
        except NotFoundError:
            pass
