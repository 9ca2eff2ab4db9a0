"""Streaming an Object Store blob to the client, chunk by chunk, with single-range requests
(video players seek with `Range: bytes=a-b`)."""

from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import web

from libs.contracts import errors
from libs.runtime.blobs import BlobInfo, BlobStore
from services.edge.errors import REQUEST_ID, GatewayError


def not_found(what: str) -> GatewayError:
    return GatewayError(404, errors.INVALID_REQUEST, f"No such {what}.")


def content_disposition(filename: str, inline: bool = False) -> str:
    """RFC 6266: an ASCII fallback plus the exact name, percent-encoded."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _requested_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a satisfiable single range; None for the whole object.
    A malformed Range is ignored (RFC 9110 allows it); an unsatisfiable one is a 416."""
    if "Range" not in request.headers:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return None
    if start < 0:  # a suffix: the last -start bytes
        start = max(size + start, 0)
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, stop


async def _window(chunks: AsyncIterator[bytes], start: int, stop: int) -> AsyncIterator[bytes]:
    offset = 0
    async for chunk in chunks:
        end = offset + len(chunk)
        if end > start and offset < stop:
            yield chunk[max(start - offset, 0):min(stop - offset, len(chunk))]
        offset = end
        if offset >= stop:
            return


async def stream_blob(request: web.Request, blobs: BlobStore, info: BlobInfo, filename: str,
                      content_type: str | None = None, inline: bool = False) -> web.StreamResponse:
    try:
        span = _requested_range(request, info.size)
    except web.HTTPRequestRangeNotSatisfiable as exc:
        raise GatewayError(416, errors.INVALID_REQUEST, f"Range not satisfiable: the object has {info.size} bytes.",
                           headers=dict(exc.headers)) from exc
    start, stop = span or (0, info.size)
    try:
        chunks = await blobs.chunks(info.name)
    except LookupError as exc:
        raise not_found("file") from exc
    response = web.StreamResponse(status=206 if span else 200, headers={
        "Content-Type": content_type or info.content_type,
        "Content-Disposition": content_disposition(filename, inline),
        "Accept-Ranges": "bytes",
        # Bytes from customers and providers, served on the API's origin: never run them as a page.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "X-Request-Id": request[REQUEST_ID],
    })
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    response.content_length = stop - start
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            async for piece in _window(chunks, start, stop) if span else chunks:
                await response.write(piece)
        await response.write_eof()
    finally:
        # A range or a HEAD stops early: close the reader so its NATS subscription ends now.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    return response
