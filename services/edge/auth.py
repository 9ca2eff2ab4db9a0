"""API-key authentication from a local mirror of the keys KV bucket.

Checking a key is a dict lookup (no network hop); a revoked or disabled key
stops working on every replica as soon as the KV watch delivers the change.
"""

import hashlib
import time
from collections.abc import Mapping

import msgspec
import structlog
from nats.js import JetStreamContext

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
from libs.runtime.kv_mirror import KvMirror
from services.edge.errors import GatewayError

_TOKEN_CACHE_MAX = 10_000


class KeyEntry(msgspec.Struct, frozen=True):
    record: ApiKeyRecord
    principal: Principal


def _entry(raw: bytes) -> KeyEntry:
    record = decode_record(raw)
    return KeyEntry(record, Principal(record.account_id, record.key_id, record.subaccount_id))


class KeyStore:
    def __init__(self) -> None:
        self.mirror: KvMirror[KeyEntry] = KvMirror(subjects.KV_API_KEYS, _entry, on_change=self._forget_tokens)
        # Plaintext token -> entry, so a hot key costs a dict hit instead of a SHA-256.
        # Emptied on every change to the mirror, so it can never outlive a revocation.
        self._by_token: dict[str, KeyEntry] = {}

    @property
    def synced(self) -> bool:
        return self.mirror.synced.is_set()

    async def start(self, js: JetStreamContext) -> None:
        await self.mirror.start(js)

    def _forget_tokens(self) -> None:
        self._by_token = {}

    def check(self, headers: Mapping[str, str], scope: str = SCOPE_INFERENCE) -> KeyEntry:
        """The caller's key from `Authorization: Bearer` (or Anthropic-style `x-api-key`)."""
        return self.authenticate(headers.get("Authorization"), headers.get("x-api-key"), scope)

    def authenticate(self, authorization: str | None, api_key: str | None = None,
                     scope: str = SCOPE_INFERENCE) -> KeyEntry:
        token = _bearer(authorization) if authorization else api_key
        if not token:
            raise GatewayError(401, errors.AUTHENTICATION,
                               "Missing API key. Send 'Authorization: Bearer sk-aig-...'.")
        entry = self._by_token.get(token)
        if entry is None:
            entry = self.mirror.entries.get(hashlib.sha256(token.encode()).hexdigest())
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
        # Every later log line of this request names its tenant (never the key itself).
        structlog.contextvars.bind_contextvars(account_id=record.account_id, subaccount_id=record.subaccount_id)
        return entry

    async def ensure_admin(self, admin_key: str) -> None:
        """Make `admin_key` the root account's admin key; retire any other admin key."""
        kv = self.mirror.kv
        assert kv is not None
        digest = hash_key(admin_key)
        current = self.mirror.entries.get(digest)
        if current is None or current.record.key_id != ADMIN_KEY_ID:
            record = ApiKeyRecord(key_id=ADMIN_KEY_ID, account_id=ROOT_ACCOUNT, scopes=ALL_SCOPES,
                                  name="admin", created_at=int(time.time()))
            await kv.put(digest, encode_record(record))
            # Readiness must mean the admin key works here.
            await self.mirror.wait_for(digest)
        for other, entry in list(self.mirror.entries.items()):
            if other != digest and entry.record.key_id == ADMIN_KEY_ID:
                await kv.delete(other)


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
