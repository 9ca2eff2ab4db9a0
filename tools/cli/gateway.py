"""The CLI's HTTP client: one gateway, one key, and every failure turned into an exit code.

The standard library's urllib: it starts in milliseconds (a CLI runs once per command), honours
the usual proxy variables, and streams answers line by line. Answers come back as the raw JSON
bytes (printed as they are under --json) and are decoded into the contract's Structs
(libs/contracts/http/) only to be shown as tables.
"""

import contextlib
import http.client
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import msgspec

from libs.contracts.errors import ErrorEnvelope
from tools.cli.exit_codes import FAILED, UNREACHABLE, USAGE, CliError

T = TypeVar("T")
TIMEOUT_S = 120.0  # per blocking read: a long completion or a slow report still fits
_CHUNK = 64 * 1024
_decode_error = msgspec.json.Decoder(ErrorEnvelope).decode
_encode = msgspec.json.Encoder().encode


class SseEvent(msgspec.Struct):
    event: str  # "message" when the server names none (the SSE default)
    data: str


def api_root(url: str) -> str:
    """The gateway's /v1 root, whether the URL was given with /v1 or without."""
    root = url.strip().rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


def api_error(status: int, body: bytes) -> CliError:
    """The gateway's own message from its error envelope; the start of the body otherwise
    (a proxy's HTML page, say)."""
    try:
        message = _decode_error(body).error.message
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body.decode("utf-8", "replace").strip()[:300]
        return CliError(FAILED, f"HTTP {status}" + (f": {text}" if text else ""), status=status)
    return CliError(FAILED, message, body, status)


def segment(value: str) -> str:
    """An id as one path segment, percent-encoded: whatever it is, the gateway judges it (an
    unknown id is its 404), and it can never reach another path."""
    if value in ("", ".", ".."):
        raise CliError(USAGE, f"'{value}' is not an id")
    return urllib.parse.quote(value, safe="")


def parse(raw: bytes, type_: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CliError(FAILED, f"the gateway's answer is not what this CLI expects: {exc}") from exc


def _unreachable(root: str, exc: Exception) -> CliError:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return CliError(UNREACHABLE, f"no answer from the gateway at {root} in time")
    if isinstance(exc, urllib.error.URLError):  # nothing was answered: refused, no such host, TLS
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return CliError(UNREACHABLE, f"cannot reach the gateway at {root}: {detail}")
    return CliError(UNREACHABLE, f"the connection to the gateway at {root} broke: {exc or type(exc).__name__}")


def _checked_url(url: str) -> str:
    root = api_root(url)
    try:
        parts = urllib.parse.urlsplit(root)
        host = parts.hostname
        _ = parts.port  # a port that is no number raises here
    except ValueError as exc:
        raise CliError(USAGE, f"'{url}' is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise CliError(USAGE, f"'{url}' is not an http(s) URL of a gateway, e.g. http://127.0.0.1:8080/v1")
    return root


def checked_key(key: str) -> str:
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        raise CliError(USAGE, "the API key has characters an Authorization header cannot carry")
    return key


def _form_filename(name: str) -> str:
    """A filename a multipart header carries as is; anything odd becomes a plain name."""
    return name if name.isascii() and name.isprintable() and '"' not in name and "\\" not in name else "upload.jsonl"


class Gateway:
    def __init__(self, url: str, key: str) -> None:
        self.url = _checked_url(url)
        self._headers = {"Authorization": f"Bearer {checked_key(key)}", "User-Agent": "switchboard-cli"}
        # Proxies from the environment, TLS verified; each call opens and closes its own connection.
        self._opener = urllib.request.build_opener()

    def _open(self, method: str, path: str, data: bytes | Iterable[bytes] | None, headers: dict[str, str] | None,
              params: dict[str, str] | None, timeout_s: float | None) -> http.client.HTTPResponse:
        url = f"{self.url}/{path.lstrip('/')}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(url, data=data, headers={**self._headers, **(headers or {})}, method=method)
        try:
            return self._opener.open(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    body = exc.read()
                except (OSError, http.client.HTTPException):
                    body = b""
            raise api_error(exc.code, body) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise _unreachable(self.url, exc) from exc

    def request(self, method: str, path: str, *, body: msgspec.Struct | None = None,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> bytes:
        """The answer's bytes on 2xx; a CliError otherwise."""
        data = None
        if body is not None:
            data = _encode(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        with self._open(method, path, data, headers, params, TIMEOUT_S) as response:
            try:
                return response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise _unreachable(self.url, exc) from exc

    def upload(self, path: str, file: BinaryIO, filename: str, fields: dict[str, str]) -> bytes:
        """A multipart/form-data POST of `fields` and `file`, streamed from disk (a batch input
        file can be large); its length is known, so no chunked encoding."""
        boundary = "switchboard-" + secrets.token_hex(16)
        head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                        for name, value in fields.items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{_form_filename(filename)}"\r\nContent-Type: application/jsonl\r\n\r\n').encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = Path(file.name).stat().st_size if isinstance(file.name, str) else None

        def chunks() -> Iterator[bytes]:
            yield head
            while chunk := file.read(_CHUNK):
                yield chunk
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        if size is not None:
            headers["Content-Length"] = str(len(head) + size + len(tail))
        with self._open("POST", path, chunks(), headers, None, TIMEOUT_S) as response:
            try:
                return response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise _unreachable(self.url, exc) from exc

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, body: msgspec.Struct | None = None,
               params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
               timeout_s: float | None = TIMEOUT_S) -> Iterator[http.client.HTTPResponse]:
        """An open 2xx answer to read line by line, closed when the block ends. `timeout_s`
        bounds each read (None: wait as long as it takes)."""
        data = None
        if body is not None:
            data = _encode(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        with self._open(method, path, data, headers, params, timeout_s) as response:
            try:
                yield response
            except (OSError, http.client.HTTPException) as exc:
                raise _unreachable(self.url, exc) from exc


def sse_events(lines: Iterable[bytes]) -> Iterator[SseEvent]:
    """Server-sent events as they arrive (comments and `id:`/`retry:` fields are skipped)."""
    name, data = "", []
    for raw in lines:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not line:
            if data:
                yield SseEvent(name or "message", "\n".join(data))
            name, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        yield SseEvent(name or "message", "\n".join(data))
