"""`Idempotency-Key` on POSTs that create something (jobs, files, batches, sub-accounts,
budgets, webhook endpoints): the same key and body within 24 h answers the original
response again, never a second object; the same key with another body is a 409.

The claim is a KV `create` (atomic across edge replicas), so two concurrent requests
with one key cannot both run: the second gets a 409 while the first is in flight.
Answers are kept only when the operation ran: a refused request (4xx raised before
any work, a 5xx) releases the key so a corrected retry can use it, as Stripe does.
Keys are scoped to the calling account and sub-account.
"""

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import msgspec
from aiohttp import web
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import Principal
from libs.runtime.kv_mirror import open_bucket
from services.edge.errors import GatewayError

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
TTL_S: Final = 24 * 3600
_MAX_KEY = 255
_KEPT_HEADERS = ("Content-Type", "Location", "X-Model", "X-Provider", "X-Cost-Cents")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StoredAnswer(msgspec.Struct, kw_only=True):
    fingerprint: str
    state: Literal["pending", "done"]
    created_at: int
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = {}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StoredAnswer).decode


def fingerprint_of(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def key_of(request: web.Request) -> str | None:
    """The request's Idempotency-Key, checked; None when it sent none."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > _MAX_KEY or not key.isprintable():
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"{HEADER} must be 1 to {_MAX_KEY} printable characters.", param=HEADER)
    return key


class Claim:
    """The right to run the operation for one key; `finish` keeps the answer, `release` gives the key back."""

    def __init__(self, kv: KeyValue, kv_key: str, fingerprint: str, revision: int) -> None:
        self._kv = kv
        self._kv_key = kv_key
        self._fingerprint = fingerprint
        self._revision = revision

    async def finish(self, response: web.StreamResponse) -> None:
        if not isinstance(response, web.Response) or response.status >= 500:
            await self.release()
            return
        body = response.body if isinstance(response.body, bytes) else b""
        headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        answer = StoredAnswer(fingerprint=self._fingerprint, state="done", created_at=int(time.time()),
                              status=response.status, body=body, headers=headers)
        await self._kv.update(self._kv_key, _encode(answer), last=self._revision)

    async def release(self) -> None:
        try:
            await self._kv.delete(self._kv_key, last=self._revision)
        except (KeyNotFoundError, KeyWrongLastSequenceError):
            pass


class Idempotency:
    def __init__(self) -> None:
        self._kv: KeyValue | None = None

    async def start(self, js) -> None:  # type: ignore[no-untyped-def]
        self._kv = await open_bucket(js, subjects.KV_IDEMPOTENCY, ttl_s=TTL_S)

    async def begin(self, principal: Principal, scope: str, key: str, fingerprint: str
                    ) -> Claim | web.Response:
        """Claim `key` for this operation, or the response a request with it already earned."""
        assert self._kv is not None, "Idempotency used before start()"
        kv_key = fingerprint_of(principal.account_id, principal.subaccount_id or "", scope, key)
        pending = StoredAnswer(fingerprint=fingerprint, state="pending", created_at=int(time.time()))
        for _ in range(3):
            try:
                revision = await self._kv.create(kv_key, _encode(pending))
                return Claim(self._kv, kv_key, fingerprint, revision)
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await self._kv.get(kv_key)
            except KeyNotFoundError:
                continue  # released or expired between the two calls: try to claim again
            if not entry.value:
                continue
            stored = _decode(entry.value)
            if stored.fingerprint != fingerprint:
                raise GatewayError(409, errors.INVALID_REQUEST,
                                   f"This {HEADER} was already used with a different request body; "
                                   "use a new key for a new request.", param=HEADER)
            if stored.state == "pending":
                raise GatewayError(409, errors.INVALID_REQUEST,
                                   f"A request with this {HEADER} is still in progress; retry when it has answered.",
                                   param=HEADER)
            return web.Response(status=stored.status, body=stored.body,
                                headers={**stored.headers, REPLAYED_HEADER: "true"})
        raise GatewayError(409, errors.INVALID_REQUEST, f"Could not claim this {HEADER}; retry.", param=HEADER)


IDEMPOTENCY = web.AppKey("idempotency", Idempotency)


def idempotent(handler: Handler, authenticate: Callable[[web.Request], Principal]) -> Handler:
    """Wrap a JSON-body POST handler: with an Idempotency-Key, run it at most once per key and body.
    `authenticate` is the route's own key check, so a wrong key is a 401 before any claim."""

    async def handle(request: web.Request) -> web.StreamResponse:
        key = key_of(request)
        if key is None:
            return await handler(request)
        principal = authenticate(request)
        body = await request.read()  # aiohttp keeps it: the handler reads it again for free
        claim = await request.app[IDEMPOTENCY].begin(
            principal, f"{request.method} {request.path}", key, fingerprint_of(request.path_qs, body))
        if isinstance(claim, web.Response):
            return claim
        try:
            response = await handler(request)
        except BaseException:
            await claim.release()
            raise
        await claim.finish(response)
        return response

    return handle
