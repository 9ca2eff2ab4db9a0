"""The webhooks service's answers to the edge: endpoints, deliveries and the signing secret.

Account-level keys manage endpoints and the secret; a sub-account key reads only the
deliveries of its own events. Another tenant's ids read exactly like unknown ones.
"""

import secrets
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from libs.contracts import errors
from libs.contracts.accounts import decode_subaccount
from libs.contracts.bus import events
from libs.contracts.bus import webhooks as bus
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.errors import ErrorBody
from libs.contracts.http import webhooks as http
from libs.contracts.ids import valid_id
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.webhooks.deliveries import StoredDelivery
from services.webhooks.fanout import Fanout
from services.webhooks.records import Records
from services.webhooks.signing_keys import SigningKeys
from services.webhooks.ssrf import Guard, RefusedUrl

log = structlog.get_logger()
Answer = Reply | Failure
_encode = msgspec.json.Encoder().encode
_decode_create = msgspec.json.Decoder(http.EndpointCreate).decode
_decode_update = msgspec.json.Decoder(http.EndpointUpdate).decode
_ACCOUNT_OPS = frozenset({bus.OP_ENDPOINT_CREATE, bus.OP_ENDPOINT_LIST, bus.OP_ENDPOINT_GET, bus.OP_ENDPOINT_UPDATE,
                          bus.OP_ENDPOINT_DELETE, bus.OP_DELIVERY_REDELIVER, bus.OP_SECRET_GET,
                          bus.OP_SECRET_ROTATE})
MAX_ENDPOINTS = 100


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _ok(body: msgspec.Struct) -> Reply:
    return Reply(200, _encode(body))


def _not_found(kind: str, id_: str | None) -> Failure:
    return Failure(ErrorBody(f"No webhook {kind} with id '{id_}' for this key.", errors.INVALID_REQUEST, 404, "id"))


def _visible(view: http.DeliveryView, call: bus.WebhooksCall) -> bool:
    return call.principal.subaccount_id is None or view.sub_account_id == call.principal.subaccount_id


class WebhooksApi:
    def __init__(self, endpoints: Records[http.EndpointView], endpoint_mirror: KvMirror[http.EndpointView],
                 deliveries: Records[StoredDelivery], keys: SigningKeys, guard: Guard, fanout: Fanout,
                 subaccounts: KeyValue, events_out: EventPublisher) -> None:
        self._endpoints = endpoints
        self._mirror = endpoint_mirror
        self._deliveries = deliveries
        self._keys = keys
        self._guard = guard
        self._fanout = fanout
        self._subaccounts = subaccounts
        self._events = events_out
        self._ops: dict[str, Callable[[bus.WebhooksCall], Awaitable[Answer]]] = {
            bus.OP_ENDPOINT_CREATE: self._create, bus.OP_ENDPOINT_LIST: self._list_endpoints,
            bus.OP_ENDPOINT_GET: self._get_endpoint, bus.OP_ENDPOINT_UPDATE: self._update,
            bus.OP_ENDPOINT_DELETE: self._delete, bus.OP_DELIVERY_LIST: self._list_deliveries,
            bus.OP_DELIVERY_GET: self._get_delivery, bus.OP_DELIVERY_REDELIVER: self._redeliver,
            bus.OP_SECRET_GET: self._get_secret, bus.OP_SECRET_ROTATE: self._rotate,
        }

    async def answer(self, data: bytes) -> Answer:
        try:
            call = bus.decode_call(data)
        except msgspec.DecodeError:
            return Failure(ErrorBody("undecodable webhooks call", errors.INVALID_REQUEST, 400))
        op = self._ops.get(call.op)
        if op is None:
            return Failure(ErrorBody(f"unknown webhooks operation {call.op!r}", errors.INVALID_REQUEST, 400))
        if call.op in _ACCOUNT_OPS and call.principal.subaccount_id is not None:
            return Failure(ErrorBody("Sub-account keys cannot manage webhooks; use an account key.",
                                     errors.PERMISSION, 403))
        try:
            return await op(call)
        except BadRequest as exc:
            return Failure(ErrorBody(str(exc), errors.INVALID_REQUEST, 400, exc.param))
        except msgspec.ValidationError as exc:
            return Failure(ErrorBody(f"Invalid request body: {exc}", errors.INVALID_REQUEST, 400))
        except msgspec.DecodeError as exc:
            return Failure(ErrorBody(f"Malformed JSON body: {exc}", errors.INVALID_REQUEST, 400))

    # --- endpoints ---------------------------------------------------------------------------

    async def _check(self, call: bus.WebhooksCall, url: str | None, event_types: list[str] | None,
                     sub_account_id: str | None) -> None:
        if url is not None:
            try:
                await self._guard.check_registration(url)
            except RefusedUrl as exc:
                raise BadRequest(str(exc), "url") from exc
        unknown = sorted(set(event_types or ()) - set(events.EVENT_TYPES))
        if unknown:
            raise BadRequest(f"Unknown event type(s) {', '.join(unknown)}; known: {', '.join(events.EVENT_TYPES)}.",
                             "event_types")
        if sub_account_id is not None and not await self._own_sub_account(call, sub_account_id):
            raise BadRequest(f"No sub-account '{sub_account_id}' for this key.", "sub_account_id")

    async def _own_sub_account(self, call: bus.WebhooksCall, sub_account_id: str) -> bool:
        if not valid_id(sub_account_id):
            return False
        try:
            entry = await self._subaccounts.get(sub_account_id)
        except KeyNotFoundError:
            return False
        return bool(entry.value) and decode_subaccount(entry.value).account_id == call.principal.account_id

    async def _create(self, call: bus.WebhooksCall) -> Answer:
        body = _decode_create(call.body)
        await self._check(call, body.url, body.event_types, body.sub_account_id)
        account = call.principal.account_id
        if sum(1 for key in self._mirror.entries if key.startswith(f"{account}.")) >= MAX_ENDPOINTS:
            raise BadRequest(f"An account can register at most {MAX_ENDPOINTS} webhook endpoints.")
        now = int(time.time())
        endpoint = http.EndpointView(id=f"we_{secrets.token_hex(12)}", url=body.url,
                                     event_types=list(dict.fromkeys(body.event_types)), description=body.description,
                                     disabled=body.disabled, created_at=now, updated_at=now,
                                     sub_account_id=body.sub_account_id)
        await self._endpoints.create(account, endpoint.id, endpoint)
        # Fan-out reads this replica's mirror: the endpoint gets events from the moment we answer.
        await self._mirror.wait_for(Records.key(account, endpoint.id))
        return _ok(endpoint)

    async def _list_endpoints(self, call: bus.WebhooksCall) -> Answer:
        found = await self._endpoints.list(call.principal.account_id)
        return _ok(http.EndpointList(data=sorted(found, key=lambda e: (e.created_at, e.id))))

    async def _get_endpoint(self, call: bus.WebhooksCall) -> Answer:
        endpoint = await self._endpoints.get(call.principal.account_id, call.target_id or "")
        return _not_found("endpoint", call.target_id) if endpoint is None else _ok(endpoint)

    async def _update(self, call: bus.WebhooksCall) -> Answer:
        body = _decode_update(call.body)
        fields = {f: v for f in body.__struct_fields__ if (v := getattr(body, f)) is not msgspec.UNSET}
        await self._check(call, fields.get("url"), fields.get("event_types"), fields.get("sub_account_id"))
        if "event_types" in fields:
            fields["event_types"] = list(dict.fromkeys(fields["event_types"]))
        if fields.get("disabled") is False:
            fields["disabled_reason"] = None

        def edit(endpoint: http.EndpointView) -> http.EndpointView:
            return msgspec.structs.replace(endpoint, **fields, updated_at=int(time.time()))

        changed = await self._endpoints.change(call.principal.account_id, call.target_id or "", edit)
        return _not_found("endpoint", call.target_id) if changed is None else _ok(changed)

    async def _delete(self, call: bus.WebhooksCall) -> Answer:
        account, id_ = call.principal.account_id, call.target_id or ""
        if await self._endpoints.get(account, id_) is None:
            return _not_found("endpoint", call.target_id)
        await self._endpoints.delete(account, id_)
        await self._mirror.wait_for(Records.key(account, id_), present=False)
        return _ok(http.Deleted(id=id_))

    # --- deliveries --------------------------------------------------------------------------

    async def _list_deliveries(self, call: bus.WebhooksCall) -> Answer:
        query = call.query
        status, event_type, after = query.get("status"), query.get("event_type"), query.get("after")
        if status is not None and status not in http.DELIVERY_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(http.DELIVERY_STATUSES)}.", "status")
        if event_type is not None and event_type not in events.EVENT_TYPES:
            raise BadRequest(f"Unknown event_type {event_type[:100]!r}.", "event_type")
        raw_limit = query.get("limit", str(http.DEFAULT_LIST))
        # isascii(): isdigit() admits '²', which int() refuses; the length bounds int()'s work.
        if (not (raw_limit.isascii() and raw_limit.isdigit()) or len(raw_limit) > 9
                or not 1 <= int(raw_limit) <= http.MAX_LIST):
            raise BadRequest(f"limit must be an integer from 1 to {http.MAX_LIST}.", "limit")
        views = sorted((s.view for s in await self._deliveries.list(call.principal.account_id)
                        if _visible(s.view, call) and (status is None or s.view.status == status)
                        and (event_type is None or s.view.event_type == event_type)),
                       key=lambda v: (-v.created_at, v.id))
        if after is not None:
            ids = [v.id for v in views]
            if after not in ids:
                raise BadRequest(f"after must be the id of a delivery in this list, got {after[:100]!r}.", "after")
            views = views[ids.index(after) + 1:]
        limit = int(raw_limit)
        return _ok(http.DeliveryList(data=views[:limit], has_more=len(views) > limit))

    async def _visible_delivery(self, call: bus.WebhooksCall) -> StoredDelivery | None:
        stored = await self._deliveries.get(call.principal.account_id, call.target_id or "")
        return stored if stored is not None and _visible(stored.view, call) else None

    async def _get_delivery(self, call: bus.WebhooksCall) -> Answer:
        stored = await self._visible_delivery(call)
        return _not_found("delivery", call.target_id) if stored is None else _ok(stored.view)

    async def _redeliver(self, call: bus.WebhooksCall) -> Answer:
        """A settled delivery goes back on the queue with all its attempts ahead of it again."""
        still_pending = False

        def requeue(stored: StoredDelivery) -> StoredDelivery | None:
            nonlocal still_pending
            still_pending = stored.view.status == "pending"
            if still_pending:
                return None
            now = time.time()
            view = msgspec.structs.replace(stored.view, status="pending", attempts=0, updated_at=now,
                                           next_attempt_at=now, delivered_at=None)
            return StoredDelivery(view=view, task=msgspec.structs.replace(stored.task, round=stored.task.round + 1))

        if await self._visible_delivery(call) is None:
            return _not_found("delivery", call.target_id)
        stored = await self._deliveries.change(call.principal.account_id, call.target_id or "", requeue)
        if stored is None:
            return _not_found("delivery", call.target_id)
        if still_pending:
            return Failure(ErrorBody("This delivery is still being attempted; redeliver it once it has failed "
                                     "or been delivered.", errors.INVALID_REQUEST, 409, "id"))
        await self._fanout.enqueue(stored.task, fresh=False)
        return _ok(stored.view)

    # --- the signing secret ------------------------------------------------------------------

    async def _get_secret(self, call: bus.WebhooksCall) -> Answer:
        return _ok((await self._keys.get(call.principal.account_id)).view(time.time()))

    async def _rotate(self, call: bus.WebhooksCall) -> Answer:
        record = await self._keys.rotate(call.principal.account_id)
        await self._events.emit(events.KEY_ROTATED, call.principal.account_id,
                                {"kind": "webhook_secret", "created_at": record.created_at,
                                 "previous_expires_at": record.previous_expires_at})
        return _ok(record.view(time.time()))
