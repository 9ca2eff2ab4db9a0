"""OpenAI-shaped error responses and the middleware that guarantees them.

Whatever goes wrong in a handler, the client gets the contract's envelope with
the right status; never aiohttp's text pages, never a traceback.
"""

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from libs.contracts import errors
from libs.contracts.errors import ErrorBody, error_json
from libs.runtime.logs import trace_id_of

log = structlog.get_logger()

REQUEST_ID = web.RequestKey("request_id", str)
RECEIVED_NS = web.RequestKey("received_ns", int)  # unix ns when the first middleware saw it
_MAX_REQUEST_ID = 128


class GatewayError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, param: str | None = None,
                 retry_after: int | None = None, headers: dict[str, str] | None = None,
                 refusal: str | None = None) -> None:
        super().__init__(message)
        self.body = ErrorBody(message=message, type=type_, code=status, param=param)
        self.status = status
        self.retry_after = retry_after
        self.headers = headers or {}
        self.refusal = refusal  # the gateway's own 402/429 refusals, by reason (services/edge/metrics.py)


def error_response(status: int, body: ErrorBody, headers: dict[str, str], retry_after: int | None = None
                   ) -> web.Response:
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    headers["Content-Type"] = "application/json"
    try:
        payload = error_json(body)
    except UnicodeEncodeError:  # a message echoing client bytes that are not UTF-8 (lone surrogates)
        payload = error_json(ErrorBody(body.message.encode("utf-8", "backslashreplace").decode(), body.type,
                                       body.code, body.param))
    return web.Response(status=status, body=payload, headers=headers)


def _not_utf8_header(request: web.Request) -> str | None:
    """The name of a header whose bytes are not UTF-8 (aiohttp keeps them as lone surrogates,
    which no encoder downstream accepts), or None."""
    for name, value in request.headers.items():
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return str(name)  # multidict's istr, which msgspec does not encode
    return None


class RequestIds:
    """Unique ids without a syscall per request: a random per-process prefix plus a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


REQUEST_IDS = web.AppKey("request_ids", RequestIds)


def request_id_of(request: web.Request) -> str:
    incoming = request.headers.get("X-Request-Id")
    if incoming and len(incoming) <= _MAX_REQUEST_ID and incoming.isprintable():
        return incoming
    return request.app[REQUEST_IDS].next()


_HTTP_TYPES = {
    401: errors.AUTHENTICATION,
    403: errors.PERMISSION,
    429: errors.RATE_LIMIT,
}


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> tuple[int, str]:
    status = exc.status
    if status == 413:
        return status, f"Request body too large: the limit is {request.app[MAX_BODY]} bytes."
    if status == 404:
        return status, f"Unknown path {request.path}. See the API reference for available endpoints."
    if status == 405:
        return status, f"Method {request.method} is not allowed on {request.path}."
    return status, exc.reason or "request failed"


MAX_BODY = web.AppKey("max_body_bytes", int)


def _unreadable_reason(exc: Exception) -> str:
    # aiohttp wraps the parser's error (its `message` is the readable part) in RequestPayloadError.
    cause = exc if isinstance(exc, HttpProcessingError) else exc.__cause__
    if isinstance(cause, HttpProcessingError) and cause.message:
        return cause.message.strip().splitlines()[0][:200]
    return "malformed body"


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request[RECEIVED_NS] = time.time_ns()
    request_id = request_id_of(request)
    request[REQUEST_ID] = request_id
    bad_header = _not_utf8_header(request)
    traceparent = request.headers.get("traceparent") if bad_header is None else None
    # aiohttp serves a keep-alive connection's requests in one task: reset what the last one bound.
    structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id_of(traceparent),
                                          account_id=None, subaccount_id=None)
    try:
        if bad_header is not None:
            raise GatewayError(400, errors.INVALID_REQUEST, f"Header {bad_header} is not valid UTF-8.",
                               param=bad_header)
        response = await handler(request)
    except GatewayError as exc:
        headers = {**exc.headers, "X-Request-Id": request_id}
        return error_response(exc.status, exc.body, headers, exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, message = _from_http_exception(exc, request)
        type_ = _HTTP_TYPES.get(status, errors.INVALID_REQUEST)
        return error_response(status, ErrorBody(message, type_, status), {"X-Request-Id": request_id})
    except (HttpProcessingError, RequestPayloadError) as exc:
        # The body could not be read as sent (an undecodable Content-Encoding, a malformed multipart
        # part header): the client's bytes, so a 400, not a 500. The edge makes no HTTP calls itself.
        reason = _unreadable_reason(exc)
        log.info("unreadable_body", path=request.path, error=reason)
        body = ErrorBody(f"The request body could not be read: {reason}", errors.INVALID_REQUEST, 400)
        return error_response(400, body, {"X-Request-Id": request_id})
    except Exception:
        log.exception("unhandled_error", path=request.path)
        body = ErrorBody(f"Internal gateway error (request id {request_id}).", errors.INTERNAL, 500)
        return error_response(500, body, {"X-Request-Id": request_id})
    response.headers["X-Request-Id"] = request_id
    return response
