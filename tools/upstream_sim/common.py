"""Pieces shared by every wire format: app keys, the journal, errors, text and fault helpers.

Kept apart from ``app.py`` so wire modules can import it without an import cycle.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
from collections import deque
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.settings import SimSettings


class JournalEntry(msgspec.Struct):
    """One recorded POST; the body stays raw so recording costs nothing on the hot path."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


SETTINGS_KEY = web.AppKey("upstream_sim_settings", SimSettings)
JOURNAL_KEY: web.AppKey[deque[JournalEntry]] = web.AppKey("upstream_sim_journal", deque)
JOURNAL_SIZE = 200


class InvalidRequest(Exception):
    """Client error raised by a wire module; the dispatcher turns it into a 400 envelope."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


JSON_HEADERS = {"Content-Type": "application/json"}
_encode = msgspec.json.encode


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Passing the header dict avoids aiohttp's content_type parsing on every response.
    hdrs = JSON_HEADERS if headers is None else {**JSON_HEADERS, **headers}
    return web.Response(body=_encode(data), status=status, headers=hdrs)


def openai_error(
    status: int,
    message: str,
    type_: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error response in OpenAI's envelope."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_response(body, status=status, headers=headers)


def openai_status_error(status: int, retry_after: str | None) -> web.Response:
    """The error a real OpenAI upstream would send for ``status`` (used by the status directive)."""
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    if status == 429:
        return openai_error(
            429,
            "Rate limit reached for requests (simulated).",
            "requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if status >= 500:
        return openai_error(status, f"The server had an error (simulated {status}).", "server_error", headers=headers)
    code = "invalid_api_key" if status == 401 else None
    return openai_error(
        status, f"Simulated client error {status}.", "invalid_request_error", code=code, headers=headers
    )


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


# A piece is one word plus the whitespace before it, so "".join(pieces) == text exactly;
# trailing whitespace is glued to the last piece.
_PIECE = re.compile(r"\s*\S+(?:\s+$)?")


def split_pieces(text: str) -> list[str]:
    pieces = _PIECE.findall(text)
    if not pieces and text:
        return [text]
    return pieces


def count_words(text: str) -> int:
    return len(text.split())


async def delay_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def _transport_alive(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def reset_connection(request: web.Request) -> web.StreamResponse:
    """Drop the TCP connection with an RST and no response bytes."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                # Linger 0 turns close() into an RST, which is what a crashed upstream looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
    # aiohttp fails to write this to the dead transport and treats it as a client disconnect.
    return web.Response()


async def hang_until_disconnect(request: web.Request) -> web.StreamResponse:
    """Never answer; return only once the client has gone away."""
    # aiohttp offers no disconnect event unless handler cancellation is on, so poll the transport.
    while _transport_alive(request):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    return web.Response()


def kill_connection(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """End a partly written response abruptly: flush what was written, then close without a terminator."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return resp


MALFORMED_JSON = b'{"id": "sim-malformed", "object": "chat.completion", "choices": [{"index": 0, '


def malformed_json_response() -> web.Response:
    return web.Response(body=MALFORMED_JSON, headers=JSON_HEADERS)
