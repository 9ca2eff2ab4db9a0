"""Each account's webhook signing secret in KV sb_webhook_secrets (key `<account>`),
created on first use; a rotation keeps the previous secret signing for a grace window.
All of an account's sub-accounts share its secret.

Deliveries sign from this replica's mirror of the bucket (a KV watch), not a KV read per
attempt: a rotation anywhere reaches every replica's mirror within milliseconds, and the
replica that rotates waits for its own mirror before answering."""

import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.http.webhooks import SecretView
from libs.runtime.kv_mirror import KvMirror
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
decode_secret = msgspec.json.Decoder(SecretRecord).decode
_MIRROR_WAIT_S = 2.0


class SigningKeys:
    def __init__(self, kv: KeyValue, grace_s: float, mirror: KvMirror[SecretRecord]) -> None:
        self._kv = kv
        self._grace_s = grace_s
        self._mirror = mirror

    async def signing(self, account_id: str) -> SecretRecord:
        """The record deliveries sign with: the mirror's, or KV's (created there) on an account's first use."""
        record = self._mirror.entries.get(account_id)
        return record if record is not None else await self.get(account_id)

    async def _read(self, account_id: str) -> tuple[SecretRecord, int] | None:
        try:
            entry = await self._kv.get(account_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return decode_secret(entry.value), entry.revision

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
            await self._mirrored(account_id, old.current)
            return record

    async def _mirrored(self, account_id: str, replaced: str) -> None:
        """Until this replica's deliveries sign with the new secret (others' mirrors follow in ms)."""
        await self._mirror.wait_until(lambda entries: (e := entries.get(account_id)) is not None
                                      and e.current != replaced, _MIRROR_WAIT_S)
