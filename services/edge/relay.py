"""Edge <-> router over NATS: one request/reply for whole answers, a reply
inbox relayed as SSE for streams. Router failures become GatewayErrors before
the first byte, and an SSE error event after it (never a silent end). With a
router in the edge's own process (services/node/) the same replies arrive
without the bus."""

import time
import urllib.parse
from collections.abc import Callable

import msgspec
import nats.errors
import structlog
from aiohttp import web
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import (
    BusReply,
    DispatchMeta,
    Failure,
    Reply,
    StreamChunk,
    StreamEnd,
    StreamStart,
    decode_reply,
)
from libs.contracts.errors import ErrorBody, error_json
from libs.contracts.in_process import InProcessRouter
from libs.contracts.money import cents_header
from services.edge.errors import GatewayError
from services.edge.stream_inbox import NO_ROUTER_TEXT, StreamInbox, StreamInboxes, no_responders

# The SSE event that ends a stream failing after its first byte, given the error and the last chunk
# already relayed (the Responses API numbers its events, so its error event continues the count).
ErrorEvent = Callable[[ErrorBody, bytes], bytes]
log = structlog.get_logger()
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _header_safe(value: str) -> str:
    """`value` as a header value: the model is the client's string, and a control character in a
    header makes aiohttp drop the connection instead of answering (percent-encode anything odd)."""
    if value.isascii() and value.isprintable():
        return value
    return urllib.parse.quote(value, safe="/:@+~")


def meta_headers(meta: DispatchMeta | None, request_id: str) -> dict[str, str]:
    headers = {"X-Request-Id": request_id}
    if meta is not None:
        headers["X-Model"] = _header_safe(meta.model)
        headers["X-Provider"] = meta.provider
        headers["X-Latency-Ms"] = str(round(meta.upstream_latency_ms))
        if meta.cost is not None:
            headers["X-Cost-Cents"] = cents_header(meta.cost.total_micros)
        if meta.usage is not None:
            headers["X-Input-Units"] = str(meta.usage.input_units)
            headers["X-Output-Units"] = str(meta.usage.output_units)
        if meta.cache_status is not None:
            headers["X-Cache-Status"] = meta.cache_status
    return headers


def _unavailable(what: str) -> GatewayError:
    return GatewayError(503, errors.UNAVAILABLE, f"{what}; retry shortly.")


def _timeout(timeout_s: float) -> GatewayError:
    return GatewayError(504, errors.TIMEOUT,
                        f"No answer from the gateway's router within {timeout_s:g}s. "
                        "Retry, or lower max_tokens.")


def _failure_error(failure: Failure, request_id: str) -> GatewayError:
    body = failure.error
    return GatewayError(body.code, body.type, body.message, param=body.param,
                        retry_after=failure.retry_after, headers=meta_headers(failure.meta, request_id))


def _decode(data: bytes) -> BusReply:
    try:
        return decode_reply(data)
    except msgspec.DecodeError as exc:
        raise GatewayError(502, errors.PROVIDER_ERROR, "The router sent an unreadable answer.") from exc


def _as_reply(data: bytes) -> Reply:
    reply = _decode(data)
    if isinstance(reply, Failure):
        raise _failure_error(reply, "")
    if not isinstance(reply, Reply):
        raise GatewayError(502, errors.PROVIDER_ERROR, "The router answered out of protocol.")
    return reply


async def request_reply(nc: Client, subject: str, payload: bytes, timeout_s: float,
                        unavailable: str = NO_ROUTER_TEXT,
                        headers: dict[str, str] | None = None, local: InProcessRouter | None = None) -> Reply:
    """Send one request and return the service's Reply (raising its Failure as a GatewayError);
    `local`, when the edge hosts a router, answers the catalog and health queries without the bus."""
    if local is not None and (answer := local.query(subject, payload)) is not None:
        return _as_reply(answer)
    if not nc.is_connected:
        raise _unavailable("The gateway is reconnecting to its message bus")
    try:
        msg = await nc.request(subject, payload, timeout=timeout_s, headers=headers)
    except nats.errors.NoRespondersError as exc:
        raise _unavailable(unavailable) from exc
    except nats.errors.TimeoutError as exc:
        raise _timeout(timeout_s) from exc
    except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError) as exc:
        raise _unavailable("The gateway lost its message bus") from exc
    except RuntimeError as exc:
        # nats-py on uvloop, in the moment its server dies (a cluster node, say): the socket is
        # closed before the client notices, and a publish writing to it raises this.
        raise _unavailable("The gateway lost its message bus") from exc
    if no_responders(msg):
        raise _unavailable(unavailable)
    return _as_reply(msg.data)


async def _first_replies(inboxes: StreamInboxes, inbox: StreamInbox, subject: str, payload: bytes, timeout_s: float,
                         headers: dict[str, str] | None, local: InProcessRouter | None) -> list[bytes]:
    """Hand an inference request to the router (the one in this process, else over NATS) with
    `inbox` for its replies, and wait for the first. Past the deadline the router is told to stop,
    so an answer the client never gets is neither generated nor billed."""
    nc = inboxes.nc
    if local is not None:
        local.send(subject, payload, inbox.subject, inbox.put, headers)
    else:
        if not nc.is_connected:
            raise _unavailable("The gateway is reconnecting to its message bus")
        try:
            await nc.publish(subject, payload, reply=inbox.subject, headers=headers)
        except (nats.errors.Error, RuntimeError) as exc:  # RuntimeError: see request_reply
            raise _unavailable("The gateway lost its message bus") from exc
    arrived = await inbox.take(timeout_s)
    if not arrived:
        await _stop_router(local, nc, inbox.subject)
        raise _timeout(timeout_s)
    return arrived


async def ask_router(inboxes: StreamInboxes, subject: str, payload: bytes, timeout_s: float,
                     headers: dict[str, str] | None = None, local: InProcessRouter | None = None) -> Reply:
    """One whole answer to an inference request. It comes to one of the edge's own inboxes, as a
    stream's replies do, so a cancel past the deadline can name it (nats-py's request() keeps its
    inbox to itself)."""
    inbox = inboxes.open()
    try:
        return _as_reply((await _first_replies(inboxes, inbox, subject, payload, timeout_s, headers, local))[0])
    finally:
        inboxes.close(inbox)


def reply_response(reply: Reply, request_id: str) -> web.Response:
    headers = meta_headers(reply.meta, request_id)
    headers["Content-Type"] = reply.content_type
    return web.Response(status=reply.status, body=reply.body, headers=headers)


def _error_event(body: ErrorBody, _sent: bytes) -> bytes:
    return b"data: " + error_json(body) + b"\n\n"


async def relay_stream(request: web.Request, inboxes: StreamInboxes, subject: str, payload: bytes,
                       request_id: str, timeout_s: float, idle_timeout_s: float,
                       on_end: Callable[[DispatchMeta], None] | None = None,
                       error_event: ErrorEvent | None = None,
                       headers: dict[str, str] | None = None,
                       local: InProcessRouter | None = None) -> web.StreamResponse:
    """Relay one stream; `local`, when the edge hosts a router, dispatches it there."""
    nc = inboxes.nc
    inbox = inboxes.open()
    try:
        arrived = await _first_replies(inboxes, inbox, subject, payload, timeout_s, headers, local)
        first = _decode(arrived[0])
        if isinstance(first, Failure):
            raise _failure_error(first, request_id)
        if not isinstance(first, StreamStart):
            raise GatewayError(502, errors.PROVIDER_ERROR, "The router answered out of protocol.")
        response = web.StreamResponse(status=200, headers={**_SSE_HEADERS, **meta_headers(first.meta, request_id)})
        await response.prepare(request)
        try:
            meta = await _pump(response, inbox, arrived[1:], idle_timeout_s, error_event or _error_event)
            if meta is not None and on_end is not None:
                on_end(meta)
        except (ConnectionError, _Stalled):  # the client went away, or the edge gave up on the stream
            await _stop_router(local, nc, inbox.subject)
        return response
    finally:
        inboxes.close(inbox)


class _Stalled(Exception):
    """Nothing came from the router for the idle timeout; the client has been told."""


async def _stop_router(local: InProcessRouter | None, nc: Client, reply_to: str) -> None:
    """Tell the router answering on `reply_to` to stop generating (and paying for) a stream nobody
    reads any more. Best effort: a router that is gone has stopped already."""
    if local is not None:
        local.cancel(reply_to)
        return
    try:
        await nc.publish(subjects.STREAM_CANCEL, reply_to.encode())
    except (nats.errors.Error, RuntimeError) as exc:  # the bus is away; the router's own timeouts end it
        log.info("stream_cancel_not_sent", error=repr(exc))


async def _pump(response: web.StreamResponse, inbox: StreamInbox, arrived: list[bytes], idle_timeout_s: float,
                error_event: ErrorEvent) -> DispatchMeta | None:
    """Write chunks as they arrive, those that arrived together in one write; end with the router's
    end marker (its meta returned) or an error event (_Stalled if the router fell silent)."""
    last = time.monotonic()
    sent = b""  # the latest chunk, for the error event
    while True:
        if not arrived:
            arrived = await inbox.take(idle_timeout_s)
            if not arrived:
                waited = time.monotonic() - last
                await response.write(error_event(ErrorBody(
                    f"The stream stalled: nothing from the router for {waited:.0f}s.", errors.TIMEOUT, 504), sent))
                raise _Stalled
            last = time.monotonic()
        pending: list[bytes] = []
        for msg in arrived:
            try:
                message = _decode(msg)
            except GatewayError as exc:
                pending.append(error_event(exc.body, sent))
                await response.write(b"".join(pending))
                return None
            if isinstance(message, StreamChunk):
                pending.append(message.data)
                sent = message.data
            elif isinstance(message, StreamEnd):
                if pending:
                    await response.write(b"".join(pending))
                await response.write_eof()
                return message.meta
            elif isinstance(message, Failure):
                pending.append(error_event(message.error, sent))
                await response.write(b"".join(pending))
                return None
        arrived = []
        if pending:
            await response.write(pending[0] if len(pending) == 1 else b"".join(pending))
