"""Eval and replay records in NATS KV, one key per record: `<account>.<id>`.

The account is part of the key so a lookup with another tenant's id simply
finds nothing, and listing an account reads only that account's keys.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from libs.contracts.ids import valid_id
from libs.runtime.kv_scan import scan_all

T = TypeVar("T", bound=msgspec.Struct)
_encode = msgspec.json.Encoder().encode


class Records(Generic[T]):
    def __init__(self, kv: KeyValue, decode: Callable[[bytes], T]) -> None:
        self._kv = kv
        self._decode = decode

    @staticmethod
    def _key(account_id: str, id_: str) -> str:
        return f"{account_id}.{id_}"

    async def put(self, account_id: str, id_: str, record: T) -> None:
        await self._kv.put(self._key(account_id, id_), _encode(record))

    async def get(self, account_id: str, id_: str) -> T | None:
        if not valid_id(id_):
            return None
        try:
            entry = await self._kv.get(self._key(account_id, id_))
        except KeyNotFoundError:
            return None
        return self._decode(entry.value) if entry.value else None

    async def list(self, account_id: str) -> list[T]:
        # A watch on the account's subjects: the server filters, so the cost is this account's
        # records (nats-py's keys(filters=...) would read every key and filter client-side).
        return await scan_all(self._kv, f"{account_id}.*", self._decode)
