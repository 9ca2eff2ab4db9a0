"""KV records with optimistic concurrency: `<account>.<id>` keys, read-modify-write
by revision, and an account's records listed by a server-side filtered watch.
Creates and updates are KV writes by expected revision sent through AckedPublisher
(the delivery hot path makes three per delivery); reads and the rest use nats-py's KV."""

from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.ids import valid_id
from libs.runtime.kv_scan import scan_all
from services.webhooks.acked_publish import EXPECTED_LAST_SUBJECT_SEQUENCE, AckedPublisher

T = TypeVar("T", bound=msgspec.Struct)
_encode = msgspec.json.Encoder().encode
_CAS_TRIES = 10


class Records(Generic[T]):
    def __init__(self, bucket: str, kv: KeyValue, decode: Callable[[bytes], T], writes: AckedPublisher) -> None:
        self.kv = kv
        self._decode = decode
        self._writes = writes
        self._subject_prefix = f"$KV.{bucket}."  # where nats-py's KV puts a bucket's keys

    async def _write(self, key: str, value: bytes, last: int) -> int:
        """Store `value` under `key` if its last revision is `last` (0: absent); the new revision."""
        return await self._writes.publish(self._subject_prefix + key, value,
                                          {EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)})

    @staticmethod
    def key(account_id: str, id_: str) -> str:
        return f"{account_id}.{id_}"

    async def create(self, account_id: str, id_: str, record: T) -> int | None:
        """Store `record` unless one exists; its revision if it was stored (revisions start at 1)."""
        key, value = self.key(account_id, id_), _encode(record)
        try:
            return await self._write(key, value, 0)
        except KeyWrongLastSequenceError:
            pass
        try:  # present, or a deleted key's tombstone, which nats-py's create writes over
            return await self.kv.create(key, value)
        except KeyWrongLastSequenceError:
            return None

    async def put(self, account_id: str, id_: str, record: T) -> None:
        await self.kv.put(self.key(account_id, id_), _encode(record))

    async def get(self, account_id: str, id_: str) -> T | None:
        found = await self.read(account_id, id_)
        return None if found is None else found[0]

    async def read(self, account_id: str, id_: str) -> tuple[T, int] | None:
        """The record and its revision."""
        if not valid_id(id_):
            return None
        try:
            entry = await self.kv.get(self.key(account_id, id_))
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return self._decode(entry.value), entry.revision

    async def change(self, account_id: str, id_: str, edit: Callable[[T], T | None]) -> T | None:
        """Apply `edit` to the stored record under its revision, retrying on a concurrent write.
        `edit` returning None leaves the record as it is. The stored (new) record, or None if absent."""
        found = await self.change_at(account_id, id_, edit)
        return None if found is None else found[0]

    async def change_at(self, account_id: str, id_: str, edit: Callable[[T], T | None],
                        known: tuple[T, int] | None = None) -> tuple[T, int] | None:
        """`change`, returning the new revision too; `known` (a record and revision just read or
        written) saves the first read, and is re-read only if it turns out stale."""
        for _ in range(_CAS_TRIES):
            found, known = known or await self.read(account_id, id_), None
            if found is None:
                return None
            record, revision = found
            changed = edit(record)
            if changed is None:
                return found
            try:
                revision = await self._write(self.key(account_id, id_), _encode(changed), revision)
            except KeyWrongLastSequenceError:
                continue
            return changed, revision
        raise RuntimeError(f"record {account_id}.{id_} kept changing under us")

    async def delete(self, account_id: str, id_: str) -> None:
        await self.kv.delete(self.key(account_id, id_))

    async def list(self, account_id: str) -> list[T]:
        return await scan_all(self.kv, f"{account_id}.*", self._decode)
