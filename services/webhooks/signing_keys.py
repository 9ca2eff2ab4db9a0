"""Each account's webhook signing secret in KV sb_webhook_secrets (key `<account>`),
created on first use; a rotation keeps the previous secret signing for a grace window.
All of an account's sub-accounts share its secret."""

import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.http.webhooks import SecretView
from services.webhooks.signing import new_secret


class SecretRecord(msgspec.Struct, kw_only=True):
    current: str
    created_at: int
    previous: str | None = None
    previous_expires_at: int | None = None

    def active(self, now: float) -> list[str]:
        """The secrets that sign now: the current one, and the previous one during its grace window."""
        if self.previous and self.previous_expires_at is not None and self.previous_expires_at > now:
            return [self.current, self.previous]
        return [self.current]

    def view(self, now: float) -> SecretView:
        grace = self.previous_expires_at if len(self.active(now)) > 1 else None
        return SecretView(secret=self.current, created_at=self.created_at, previous_expires_at=grace)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(SecretRecord).decode


class SigningKeys:
    def __init__(self, kv: KeyValue, grace_s: float) -> None:
        self._kv = kv
        self._grace_s = grace_s

    async def _read(self, account_id: str) -> tuple[SecretRecord, int] | None:
        try:
            entry = await self._kv.get(account_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return _decode(entry.value), entry.revision

    async def get(self, account_id: str) -> SecretRecord:
        while True:
            found = await self._read(account_id)
            if found is not None:
                return found[0]
            record = SecretRecord(current=new_secret(), created_at=int(time.time()))
            try:
                await self._kv.create(account_id, _encode(record))
            except KeyWrongLastSequenceError:
                continue  # another replica created it first: use theirs
            return record

    async def rotate(self, account_id: str) -> SecretRecord:
        while True:
            await self.get(account_id)
            found = await self._read(account_id)
            if found is None:
                continue
            old, revision = found
            now = int(time.time())
            record = SecretRecord(current=new_secret(), created_at=now, previous=old.current,
                                  previous_expires_at=now + int(self._grace_s))
            try:
                await self._kv.update(account_id, _encode(record), last=revision)
            except KeyWrongLastSequenceError:
                continue  # rotated concurrently: rotate what is there now
            return record
