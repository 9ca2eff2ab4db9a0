"""GET /v1/requests/tail: a live server-sent stream of the account's requests as they finish.

Admin keys only. Each tail client gets its own core NATS subscription on the usage subject
the routers publish their batches on (JetStream publishes reach plain subscribers too), so
nothing on the request path changes and no consumer state is left behind: the subscription
ends with the connection. Events of other accounts are dropped here, before they are queued.
The contract of the stream (event names, payloads) is libs/contracts/http/tail.py.
"""

import asyncio

import msgspec
import nats.errors
import structlog
from aiohttp import web
from nats.aio.msg import Msg

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import Principal
from libs.contracts.bus.usage import UsageEvent, decode_batch
from libs.contracts.http import tail as contract
from libs.contracts.http.usage import generation_of
from libs.contracts.ids import valid_id
from libs.contracts.keys import SCOPE_ADMIN
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.state import EDGE, EdgeState

log = structlog.get_logger()
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_MAX_QUEUED = 1000  # events held for a slow client before they are counted as dropped instead
_POLL_S = 0.5  # how soon a client that went away, or a shutdown, is noticed while nothing happens
_KEEPALIVE = b": keep-alive\n\n"
_encode = msgspec.json.Encoder().encode


def _event(name: str, payload: msgspec.Struct) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


class TailHub:
    """The edge's open tails: told to end when the edge shuts down, so they do not hold it up."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()

    async def close(self, _: web.Application) -> None:
        self.closing.set()


TAIL_HUB = web.AppKey("tail_hub", TailHub)


class _Tail:
    """One client's filter and queue, fed by its subscription's callback."""

    def __init__(self, account_id: str, subaccount_id: str | None) -> None:
        self.account_id = account_id
        self.subaccount_id = subaccount_id
        self.queue: asyncio.Queue[UsageEvent] = asyncio.Queue(_MAX_QUEUED)
        self.dropped = 0

    async def on_message(self, msg: Msg) -> None:
        try:
            batch = decode_batch(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("tail_undecodable_usage", bytes=len(msg.data))
            return
        for event in batch.events:
            if event.account_id != self.account_id:
                continue
            if self.subaccount_id is not None and event.subaccount_id != self.subaccount_id:
                continue
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    def drain(self, first: UsageEvent) -> bytes:
        """Every event queued now, in one write."""
        chunk = bytearray(_event(contract.EVENT_GENERATION, generation_of(first)))
        while not self.queue.empty():
            chunk += _event(contract.EVENT_GENERATION, generation_of(self.queue.get_nowait()))
        if self.dropped:
            chunk += _event(contract.EVENT_DROPPED, contract.TailDropped(count=self.dropped))
            self.dropped = 0
        return bytes(chunk)


def _filter(request: web.Request, state: EdgeState, principal: Principal) -> str | None:
    """The sub-account to show (None: the whole account). Another tenant's id, or one that
    cannot be an id, is the same 404 as an unknown one."""
    wanted = request.query.get("sub_account")
    if wanted is None:
        return principal.subaccount_id
    own = principal.subaccount_id
    # The id is checked before it is looked up anywhere.
    known = valid_id(wanted) and (own == wanted if own is not None else state.tenancy.owns(principal, wanted))
    if not known:
        raise GatewayError(404, errors.INVALID_REQUEST, f"No sub-account with id '{wanted}' in this account.",
                           param="sub_account")
    return wanted


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def tail_requests(request: web.Request) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    hub = request.app[TAIL_HUB]
    principal = state.keys.check(request.headers, SCOPE_ADMIN).principal
    tail = _Tail(principal.account_id, _filter(request, state, principal))
    if not state.nc.is_connected:
        raise GatewayError(503, errors.UNAVAILABLE, "The gateway's bus is not connected; retry shortly.")
    try:
        sub = await state.nc.subscribe(subjects.USAGE_EVENTS, cb=tail.on_message)
        await state.nc.flush()  # the server has the subscription: `ready` means nothing is missed from now on
    except nats.errors.Error as exc:
        raise GatewayError(503, errors.UNAVAILABLE, "The live request stream is unavailable; retry shortly.") from exc
    loop = asyncio.get_running_loop()
    response = web.StreamResponse(status=200, headers={**_SSE_HEADERS, "X-Request-Id": request[REQUEST_ID]})
    log.info("tail_opened", account_id=tail.account_id, sub_account_id=tail.subaccount_id)
    ended = "shutdown"
    try:
        await response.prepare(request)
        await response.write(_event(contract.EVENT_READY, contract.TailReady(
            account_id=principal.account_id, sub_account_id=tail.subaccount_id)))
        last_write = loop.time()
        while not hub.closing.is_set():
            try:
                first = await asyncio.wait_for(tail.queue.get(), _POLL_S)
            except TimeoutError:
                if _gone(request):
                    ended = "client_gone"
                    break
                if loop.time() - last_write >= contract.KEEPALIVE_S:
                    await response.write(_KEEPALIVE)
                    last_write = loop.time()
                continue
            await response.write(tail.drain(first))
            last_write = loop.time()
    except ConnectionError:  # the client went away mid-write (aiohttp's ClientConnectionResetError too)
        ended = "client_gone"
    finally:
        try:
            await sub.unsubscribe()
        except nats.errors.Error:  # the connection is closing: the server drops the subscription itself
            pass
        log.info("tail_closed", account_id=tail.account_id, reason=ended)
    return response


def add_routes(app: web.Application) -> None:
    hub = TailHub()
    app[TAIL_HUB] = hub
    app.on_shutdown.append(hub.close)
    app.router.add_get(contract.PATH, tail_requests)
