"""The legacy SSE transport: `GET /mcp/sse` opens a session's event stream, the client POSTs
its messages to `/mcp/message?sessionId=<id>` (the address the stream's first event names).

The stream lives in the worker that answered the GET; a POST may reach any worker or
replica, so every POST is relayed over NATS to `sb.mcp.sse.<session id>`, which only the
holder subscribes to (libs/contracts/bus/mcp.py). The session runs the SDK's Server on a
pair of memory streams; the framing (`event: endpoint`, `event: message`) is the SDK's.
A POST must present the key that opened the stream; any other key, an unknown id or one
that cannot be an id, is the same 404.
"""

import asyncio
import contextlib
import secrets
from typing import Any

import anyio
import mcp_types as types
import msgspec
import nats.errors
import structlog
from aiohttp import web
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server import Server
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from nats.aio.msg import Msg
from pydantic import ValidationError

from libs.contracts import errors, subjects
from libs.contracts.bus import mcp as bus
from libs.contracts.bus.inference import Principal
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.mcp.access import authenticate
from services.edge.mcp.server import Caller, caller_of
from services.edge.state import EDGE

log = structlog.get_logger()
MESSAGE_PATH = "/mcp/message"
MAX_SESSIONS = 1000  # per edge worker: each holds a subscription, a server task and a connection
_INBOX = 16  # client messages queued for the session's server before the relay waits
_RELAY_TIMEOUT_S = 5.0
_POLL_S = 0.5  # how soon a client that left, or a shutdown, is noticed
_KEEPALIVE_S = 15.0
_KEEPALIVE = b": keep-alive\n\n"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_PARSE_ERROR, _INVALID_REQUEST = -32700, -32600


class _Session:
    def __init__(self, principal: Principal, caller: Caller) -> None:
        self.id = secrets.token_hex(16)
        self.account_id = principal.account_id
        self.key_id = principal.key_id
        self.caller = caller
        inbox: tuple[MemoryObjectSendStream[SessionMessage | Exception],
                     MemoryObjectReceiveStream[SessionMessage | Exception]] = anyio.create_memory_object_stream(_INBOX)
        outbox: tuple[MemoryObjectSendStream[SessionMessage],
                      MemoryObjectReceiveStream[SessionMessage]] = anyio.create_memory_object_stream(_INBOX)
        self.inbox_writer, self.inbox = inbox
        self.outbox, self.outbox_reader = outbox

    def close(self) -> None:
        for stream in (self.inbox_writer, self.inbox, self.outbox, self.outbox_reader):
            stream.close()

    async def on_relay(self, msg: Msg) -> None:
        """A POSTed message, from whichever worker took the POST."""
        delivery: bus.Delivery = "not_found"
        try:
            relayed = bus.decode_message(msg.data)
            if (relayed.account_id, relayed.key_id) == (self.account_id, self.key_id):
                message = types.jsonrpc_message_adapter.validate_json(relayed.body, by_name=False)
                metadata = ServerMessageMetadata(request_context=self.caller)
                await self.inbox_writer.send(SessionMessage(message, metadata))
                delivery = "accepted"
        except (msgspec.DecodeError, msgspec.ValidationError, ValidationError):
            log.warning("mcp_sse_bad_relay", session=self.id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the session is ending: as good as gone
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(bus.encode(bus.RelayAnswer(delivery)))

    async def pump(self, response: web.StreamResponse) -> None:
        """The server's messages, as SSE `message` events, until the server ends or the client leaves."""
        async for message in self.outbox_reader:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
            await response.write(b"event: message\ndata: " + data.encode() + b"\n\n")


class SseSessions:
    """This worker's open SSE sessions; told to end when the edge shuts down."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.options = server.create_initialization_options()
        self.open = 0
        self.closing = asyncio.Event()

    async def close(self, _: web.Application) -> None:
        self.closing.set()


SSE_SESSIONS = web.AppKey("mcp_sse_sessions", SseSessions)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _unavailable() -> GatewayError:
    return GatewayError(503, errors.UNAVAILABLE, "The gateway's bus is not connected; retry shortly.")


async def open_stream(request: web.Request) -> web.StreamResponse:
    """GET /mcp/sse."""
    principal = authenticate(request).principal
    sessions = request.app[SSE_SESSIONS]
    nc = request.app[EDGE].nc
    if sessions.open >= MAX_SESSIONS:
        raise GatewayError(503, errors.UNAVAILABLE, "Too many open MCP SSE sessions here; retry shortly, or use "
                           "streamable HTTP at /mcp.", retry_after=1)
    if not nc.is_connected:
        raise _unavailable()
    session = _Session(principal, caller_of(request.headers))
    try:
        sub = await nc.subscribe(f"{subjects.MCP_SSE_PREFIX}.{session.id}", cb=session.on_relay)
    except nats.errors.Error as exc:
        session.close()
        raise _unavailable() from exc
    try:
        await nc.flush()  # the subscription is live before the client learns where to POST
    except nats.errors.Error as exc:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        session.close()
        raise _unavailable() from exc
    sessions.open += 1
    response = web.StreamResponse(headers={**_SSE_HEADERS, "X-Request-Id": request[REQUEST_ID]})
    tasks: list[asyncio.Task[Any]] = []
    try:
        await response.prepare(request)
        await response.write(f"event: endpoint\ndata: {MESSAGE_PATH}?sessionId={session.id}\n\n".encode())
        tasks = [asyncio.create_task(sessions.server.run(session.inbox, session.outbox, sessions.options)),
                 asyncio.create_task(session.pump(response))]
        loop = asyncio.get_running_loop()
        last_keepalive = loop.time()
        while not sessions.closing.is_set() and not _gone(request):
            done, _ = await asyncio.wait(tasks, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED)
            if done:
                break
            if loop.time() - last_keepalive >= _KEEPALIVE_S:
                await response.write(_KEEPALIVE)
                last_keepalive = loop.time()
    except ConnectionError:  # the client went away mid-write (aiohttp's ClientConnectionResetError too)
        pass
    finally:
        sessions.open -= 1
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception) and not isinstance(outcome, ConnectionError):
                log.warning("mcp_sse_session_error", session=session.id, error=repr(outcome))
        session.close()
    return response


def _jsonrpc_error(code: int, message: str) -> web.Response:
    body = types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=code, message=message))
    return web.Response(status=400, body=body.model_dump_json(by_alias=True, exclude_none=True),
                        content_type="application/json")


async def post_message(request: web.Request) -> web.StreamResponse:
    """POST /mcp/message?sessionId=<id>: one JSON-RPC message for the session's server."""
    principal = authenticate(request).principal
    session_id = request.query.get("sessionId") or request.query.get("session_id")
    if not session_id:
        raise GatewayError(400, errors.INVALID_REQUEST, "Pass the session as ?sessionId=<id>, as the SSE stream's "
                           "endpoint event names it.", param="sessionId")
    not_found = GatewayError(404, errors.INVALID_REQUEST, f"No MCP session with id '{session_id[:100]}' for this "
                             "key; open one with GET /mcp/sse.", param="sessionId")
    if bus.SESSION_ID.fullmatch(session_id) is None:
        raise not_found
    body = await request.read()
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return _jsonrpc_error(_PARSE_ERROR, f"Parse error: {exc}")
    try:
        types.jsonrpc_message_adapter.validate_json(body, by_name=False)
    except ValidationError as exc:
        return _jsonrpc_error(_INVALID_REQUEST, f"Invalid Request: not a JSON-RPC 2.0 message "
                                                f"({exc.error_count()} problems)")
    nc = request.app[EDGE].nc
    relayed = bus.RelayedMessage(principal.account_id, principal.key_id, body)
    try:
        reply = await nc.request(f"{subjects.MCP_SSE_PREFIX}.{session_id}", bus.encode(relayed),
                                 timeout=_RELAY_TIMEOUT_S)
        answer = bus.decode_answer(reply.data)
    except nats.errors.NoRespondersError:
        raise not_found from None
    except (nats.errors.Error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GatewayError(503, errors.UNAVAILABLE, "The MCP session did not take the message; retry shortly.",
                           retry_after=1) from exc
    if answer.delivery != "accepted":
        raise not_found
    return web.Response(status=202, text="Accepted")
