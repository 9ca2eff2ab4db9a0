"""API-key authentication from a local mirror of the keys KV bucket.

Each edge replica watches the bucket, so checking a key is a dict lookup (no
network hop) and a revoked or disabled key stops working on every replica as
soon as the watch delivers the change (milliseconds). On a NATS reconnect the
watch is rebuilt from scratch so no deletion can be missed.
"""

import asyncio
import hashlib
import time

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import Principal
from libs.contracts.keys import (
    ADMIN_KEY_ID,
    ALL_SCOPES,
    ROOT_ACCOUNT,
    SCOPE_INFERENCE,
    ApiKeyRecord,
    decode_record,
    encode_record,
    hash_key,
)
from services.edge.errors import GatewayError

log = structlog.get_logger()

_DELETES = ("DEL", "PURGE")
_TOKEN_CACHE_MAX = 10_000


class _Entry(msgspec.Struct, frozen=True):
    record: ApiKeyRecord
    principal: Principal


async def open_keys_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(subjects.KV_API_KEYS)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=subjects.KV_API_KEYS, history=1))


class KeyStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # Plaintext token -> entry, so a hot key costs a dict hit instead of a SHA-256.
        # Cleared on every change to the mirror, so it can never outlive a revocation.
        self._by_token: dict[str, _Entry] = {}
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    async def start(self, js: JetStreamContext) -> None:
        self._kv = await open_keys_bucket(js)
        await self._watch()

    async def resync(self) -> None:
        """Rebuild the mirror (after a NATS reconnect); serve the old copy meanwhile."""
        if self._kv is None:
            return
        try:
            await self._watch()
        except Exception as exc:  # NATS may still be settling; the next reconnect retries
            log.warning("keys_resync_failed", error=repr(exc))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        assert self._kv is not None
        watcher = await self._kv.watchall()
        if self._task is not None:
            self._task.cancel()
        loaded = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._follow(watcher, loaded))
        await asyncio.wait_for(asyncio.shield(loaded), timeout=10)

    async def _follow(self, watcher: KeyValue.KeyWatcher, loaded: asyncio.Future[None]) -> None:
        fresh: dict[str, _Entry] = {}
        initial = True
        try:
            async for entry in watcher:
                self._by_token = {}
                if entry is None:  # end of the initial replay
                    if initial:
                        self._entries, initial = fresh, False
                        self.synced.set()
                        loaded.set_result(None)
                    continue
                target = fresh if initial else self._entries
                if entry.operation in _DELETES or not entry.value:
                    target.pop(entry.key, None)
                    continue
                try:
                    record = decode_record(entry.value)
                except msgspec.DecodeError:
                    log.warning("bad_key_record", key=entry.key)
                    continue
                principal = Principal(record.account_id, record.key_id, record.subaccount_id)
                target[entry.key] = _Entry(record, principal)
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass

    def authenticate(self, authorization: str | None, api_key: str | None = None,
                     scope: str = SCOPE_INFERENCE) -> Principal:
        token = _bearer(authorization) if authorization else api_key
        if not token:
            raise GatewayError(401, errors.AUTHENTICATION,
                               "Missing API key. Send 'Authorization: Bearer sk-aig-...'.")
        entry = self._by_token.get(token)
        if entry is None:
            entry = self._entries.get(hashlib.sha256(token.encode()).hexdigest())
            if entry is not None and len(self._by_token) < _TOKEN_CACHE_MAX:
                self._by_token[token] = entry
        if entry is None:
            raise GatewayError(401, errors.AUTHENTICATION,
                               "Invalid API key. Check 'Authorization: Bearer ...' or mint a new key.")
        record = entry.record
        if record.disabled or (record.expires_at is not None and record.expires_at <= time.time()):
            raise GatewayError(401, errors.AUTHENTICATION, "This API key is disabled or expired.")
        if scope not in record.scopes:
            raise GatewayError(403, errors.PERMISSION, f"This API key lacks the '{scope}' scope.")
        return entry.principal

    async def ensure_admin(self, admin_key: str) -> None:
        """Make `admin_key` the root account's admin key; retire any other admin key."""
        assert self._kv is not None
        digest = hash_key(admin_key)
        record = ApiKeyRecord(key_id=ADMIN_KEY_ID, account_id=ROOT_ACCOUNT, scopes=ALL_SCOPES,
                              name="admin", created_at=int(time.time()))
        current = self._entries.get(digest)
        if current is None or current.record.key_id != ADMIN_KEY_ID:
            await self._kv.put(digest, encode_record(record))
            # Readiness must mean the admin key works here: wait for the watch to deliver it.
            for _ in range(200):
                if digest in self._entries:
                    break
                await asyncio.sleep(0.025)
        for other, entry in list(self._entries.items()):
            if other != digest and entry.record.key_id == ADMIN_KEY_ID:
                await self._kv.delete(other)


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
