"""Sub-accounts and management keys: the management API behind the edge.

State lives in NATS KV (keys by SHA-256, sub-accounts by id); this module reads
it from local mirrors and writes with the KV revision (optimistic concurrency),
so any ledger replica can serve any call. Every answer is scoped to the
caller's account: another account's id is indistinguishable from an unknown one.
"""

import secrets
import time
from collections.abc import Callable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from libs.contracts import errors
from libs.contracts.accounts import SubAccountRecord, decode_subaccount
from libs.contracts.accounts import encode as encode_account
from libs.contracts.bus import events
from libs.contracts.bus.inference import Failure, Principal
from libs.contracts.bus.ledger import AdminRequest
from libs.contracts.http import accounts as http
from libs.contracts.keys import (
    ADMIN_KEY_ID,
    SCOPE_INFERENCE,
    SCOPE_READ_USAGE,
    ApiKeyRecord,
    decode_record,
    encode_record,
    hash_key,
    mint_key,
)
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.ledger.admin_ops import Answer, Ops, fail, not_found, ok
from services.ledger.spend import SpendTracker

_RETRIES = 5


class Accounts:
    def __init__(self, keys: KvMirror[ApiKeyRecord], subaccounts: KvMirror[SubAccountRecord],
                 spend: SpendTracker, events_out: EventPublisher) -> None:
        self._keys = keys
        self._subs = subaccounts
        self._spend = spend
        self._events = events_out
        self.ops: Ops = {
            "subaccount.create": self._create_sub, "subaccount.list": self._list_subs,
            "subaccount.get": self._get_sub, "subaccount.update": self._update_sub,
            "subaccount.delete": self._delete_sub, "subaccount.rotate": self._rotate_sub,
            "key.create": self._create_key, "key.list": self._list_keys, "key.get": self._get_key,
            "key.update": self._update_key, "key.delete": self._delete_key,
        }

    # --- sub-accounts ------------------------------------------------------------------------

    def _view(self, sub: SubAccountRecord, key: str | None = None) -> http.SubAccountView:
        return http.SubAccountView(
            id=sub.id, name=sub.name, spend_cap_cents=sub.spend_cap_cents, external_ref=sub.external_ref,
            rate_limit_rpm=sub.rate_limit_rpm, rate_limit_tpm=sub.rate_limit_tpm, default_tag=sub.default_tag,
            metadata=sub.metadata, created=sub.created_at, key_id=sub.key_id,
            spent_cents_this_month=self._spend.spent_cents(sub.id), key=key, snapshots=sub.snapshots)

    def _owned_sub(self, principal: Principal, id_: str | None) -> SubAccountRecord | None:
        sub = self._subs.entries.get(id_ or "")
        return sub if sub is not None and sub.account_id == principal.account_id else None

    async def _mint_sub_key(self, sub: SubAccountRecord) -> tuple[str, str]:
        plaintext, key_id = mint_key(), f"key_{secrets.token_hex(8)}"
        record = ApiKeyRecord(key_id=key_id, account_id=sub.account_id, subaccount_id=sub.id,
                              scopes=(SCOPE_INFERENCE, SCOPE_READ_USAGE), name=f"{sub.name} key",
                              created_at=int(time.time()))
        assert self._keys.kv is not None
        await self._keys.kv.put(hash_key(plaintext), encode_record(record))
        return plaintext, key_id

    async def _create_sub(self, request: AdminRequest) -> Answer:
        body = msgspec.json.decode(request.body, type=http.SubAccountCreate)
        sub = SubAccountRecord(
            id=f"sa_{secrets.token_hex(8)}", account_id=request.principal.account_id, name=body.name,
            spend_cap_cents=body.spend_cap_cents, external_ref=body.external_ref, rate_limit_rpm=body.rate_limit_rpm,
            rate_limit_tpm=body.rate_limit_tpm, default_tag=body.default_tag, metadata=body.metadata or {},
            created_at=int(time.time()), snapshots=body.snapshots)
        plaintext, key_id = await self._mint_sub_key(sub)
        sub.key_id = key_id
        assert self._subs.kv is not None
        await self._subs.kv.create(sub.id, encode_account(sub))
        await self._subs.wait_for(sub.id)
        await self._keys.wait_for(hash_key(plaintext))
        await self._spend.refresh(sub)
        await self._events.emit(events.SUBACCOUNT_CREATED, sub.account_id,
                                {"sub_account_id": sub.id, "name": sub.name, "external_ref": sub.external_ref,
                                 "spend_cap_cents": sub.spend_cap_cents})
        return ok(self._view(sub, plaintext))

    async def _list_subs(self, request: AdminRequest) -> Answer:
        subs = sorted((s for s in self._subs.entries.values() if s.account_id == request.principal.account_id),
                      key=lambda s: (s.created_at, s.id))
        return ok(http.ListOf(data=[self._view(s) for s in subs]))

    async def _get_sub(self, request: AdminRequest) -> Answer:
        sub = self._owned_sub(request.principal, request.target_id)
        return ok(self._view(sub)) if sub else not_found("sub-account", request.target_id)

    async def _update_sub(self, request: AdminRequest) -> Answer:
        changes = msgspec.json.decode(request.body, type=http.SubAccountUpdate)
        fields = {f: getattr(changes, f) for f in changes.__struct_fields__
                  if getattr(changes, f) is not msgspec.UNSET}
        if "metadata" in fields and fields["metadata"] is None:
            fields["metadata"] = {}
        updated = await self._cas_sub(request.principal, request.target_id,
                                      lambda sub: msgspec.structs.replace(sub, **fields))
        if isinstance(updated, Failure):
            return updated
        await self._spend.refresh(updated)
        return ok(self._view(updated))

    async def _cas_sub(self, principal: Principal, id_: str | None,
                       change: Callable[[SubAccountRecord], SubAccountRecord]) -> SubAccountRecord | Failure:
        """Read-modify-write with the KV revision, retried if another writer got there first."""
        assert self._subs.kv is not None
        for _ in range(_RETRIES):
            if self._owned_sub(principal, id_) is None:
                return not_found("sub-account", id_)
            try:
                entry = await self._subs.kv.get(id_)
            except KeyNotFoundError:
                return not_found("sub-account", id_)
            if entry.value is None:
                return not_found("sub-account", id_)
            updated = change(decode_subaccount(entry.value))
            try:
                await self._subs.kv.update(id_, encode_account(updated), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            await self._wait_value(id_, updated)
            return updated
        return fail(409, errors.INVALID_REQUEST, "The sub-account changed concurrently; retry.")

    async def _wait_value(self, id_: str, value: SubAccountRecord) -> None:
        await self._subs.wait_until(lambda entries: entries.get(id_) == value)

    async def _delete_sub(self, request: AdminRequest) -> Answer:
        sub = self._owned_sub(request.principal, request.target_id)
        if sub is None:
            return not_found("sub-account", request.target_id)
        assert self._subs.kv is not None and self._keys.kv is not None
        # Revoke first: once the key records are gone, every edge refuses them.
        for digest, record in list(self._keys.entries.items()):
            if record.subaccount_id == sub.id:
                await self._keys.kv.delete(digest)
        await self._subs.kv.delete(sub.id)
        await self._subs.wait_for(sub.id, present=False)
        return ok(http.Deleted(id=sub.id, object="sub_account"))

    async def _rotate_sub(self, request: AdminRequest) -> Answer:
        sub = self._owned_sub(request.principal, request.target_id)
        if sub is None:
            return not_found("sub-account", request.target_id)
        plaintext, key_id = await self._mint_sub_key(sub)
        old = [d for d, r in self._keys.entries.items() if r.subaccount_id == sub.id and r.key_id != key_id]
        updated = await self._cas_sub(request.principal, sub.id,
                                      lambda s: msgspec.structs.replace(s, key_id=key_id))
        if isinstance(updated, Failure):
            return updated
        assert self._keys.kv is not None
        for digest in old:
            await self._keys.kv.delete(digest)
        await self._keys.wait_for(hash_key(plaintext))
        await self._events.emit(events.KEY_ROTATED, sub.account_id, {"sub_account_id": sub.id, "key_id": key_id})
        return ok(self._view(updated, plaintext))

    # --- management keys (the account's own keys) ---------------------------------------------

    def _key_view(self, record: ApiKeyRecord, key: str | None = None) -> http.KeyView:
        return http.KeyView(id=record.key_id, name=record.name, scopes=list(record.scopes), disabled=record.disabled,
                            expires_at=record.expires_at, created=record.created_at,
                            sub_account_id=record.subaccount_id, key=key)

    def _owned_key(self, principal: Principal, key_id: str | None) -> tuple[str, ApiKeyRecord] | None:
        for digest, record in self._keys.entries.items():
            if record.key_id == key_id and record.account_id == principal.account_id:
                return digest, record
        return None

    async def _create_key(self, request: AdminRequest) -> Answer:
        body = msgspec.json.decode(request.body, type=http.KeyCreate)
        plaintext = mint_key()
        record = ApiKeyRecord(key_id=f"key_{secrets.token_hex(8)}", account_id=request.principal.account_id,
                              scopes=tuple(dict.fromkeys(body.scopes)), name=body.name,
                              expires_at=body.expires_at, created_at=int(time.time()))
        assert self._keys.kv is not None
        await self._keys.kv.create(hash_key(plaintext), encode_record(record))
        await self._keys.wait_for(hash_key(plaintext))
        return ok(self._key_view(record, plaintext))

    async def _list_keys(self, request: AdminRequest) -> Answer:
        records = sorted((r for r in self._keys.entries.values()
                          if r.account_id == request.principal.account_id and r.subaccount_id is None),
                         key=lambda r: (r.created_at, r.key_id))
        return ok(http.ListOf(data=[self._key_view(r) for r in records]))

    async def _get_key(self, request: AdminRequest) -> Answer:
        found = self._owned_key(request.principal, request.target_id)
        return ok(self._key_view(found[1])) if found else not_found("key", request.target_id)

    async def _update_key(self, request: AdminRequest) -> Answer:
        changes = msgspec.json.decode(request.body, type=http.KeyUpdate)
        found = self._owned_key(request.principal, request.target_id)
        if found is None:
            return not_found("key", request.target_id)
        if found[1].key_id == ADMIN_KEY_ID:
            return fail(400, errors.INVALID_REQUEST, "The bootstrap admin key is managed by SWITCHBOARD_ADMIN_KEY.")
        digest = found[0]
        fields = {f: getattr(changes, f) for f in changes.__struct_fields__ if getattr(changes, f) is not msgspec.UNSET}
        if "scopes" in fields:
            fields["scopes"] = tuple(dict.fromkeys(fields["scopes"]))
        assert self._keys.kv is not None
        try:
            entry = await self._keys.kv.get(digest)
        except KeyNotFoundError:
            return not_found("key", request.target_id)
        updated = msgspec.structs.replace(decode_record(entry.value or b""), **fields)
        try:
            await self._keys.kv.update(digest, encode_record(updated), last=entry.revision)
        except KeyWrongLastSequenceError:
            return fail(409, errors.INVALID_REQUEST, "The key changed concurrently; retry.")
        return ok(self._key_view(updated))

    async def _delete_key(self, request: AdminRequest) -> Answer:
        found = self._owned_key(request.principal, request.target_id)
        if found is None:
            return not_found("key", request.target_id)
        assert self._keys.kv is not None
        await self._keys.kv.delete(found[0])
        await self._keys.wait_for(found[0], present=False)
        return ok(http.Deleted(id=found[1].key_id, object="api_key"))
