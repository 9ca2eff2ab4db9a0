"""The long-running generation interface (video, music, 3D): one LongRunAdapter per wire format.

A provider module that defines `LONGRUN` (a LongRunAdapter subclass) drives that kind's
long-running API: `submit` starts a generation and says how to find it again (the
provider's id plus adapter-specific `extra`, carried in the bus's LongRunHandle),
`poll` reads its state, `fetch` lists the finished result's files (and the seconds the
provider says it made), `download` streams one of them, `cancel` stops it where the API
can. Every failure is an UpstreamError, mapped to the client's error in
router/failures.py like every synchronous call.

What the shared HTTP plumbing guarantees: provider JSON is decoded into a dict (anything
else is "malformed"); a download follows at most a few redirects, only to http(s) URLs,
and sends the provider's credentials only to the provider's own origin (a result URL on
a CDN gets no key).
"""

import math
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Final

import aiohttp
import msgspec

from libs.contracts.bus.longrun import LongRunHandle, State
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.http import ErrorFactory
from services.router.providers.openai_compat import parse_retry_after, status_error

_MAX_REDIRECTS: Final = 5
_DOWNLOAD_CHUNK: Final = 64 * 1024
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


class GenerationRequest(msgspec.Struct, kw_only=True):
    """The client's body, as the jobs service forwards it: AsyncJobRequest or OpenAI VideoCreate fields."""

    prompt: str = ""
    duration: float | None = None  # seconds (AsyncJobRequest)
    seconds: str | int | None = None  # OpenAI VideoCreate spells the duration this way
    size: str | None = None  # OpenAI VideoCreate: "1280x720"
    aspect_ratio: str | None = None
    resolution: str | None = None
    image_url: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    """A validated generation request: what every adapter translates."""

    modality: str  # libs.contracts.bus.longrun.MODALITY_*
    prompt: str
    seconds: int | None = None  # whole seconds asked for; None: the model's default
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    image_url: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None


class Progress(msgspec.Struct, kw_only=True):
    state: State
    progress: float | None = None  # 0..100
    error: str | None = None  # state failed: the provider's reason
    poll_after_s: float | None = None


class Submitted(msgspec.Struct, kw_only=True):
    upstream_id: str
    status: Progress
    extra: dict[str, str] = {}  # goes into LongRunHandle.extra; "seconds" = what was asked for


class ResultFile(msgspec.Struct, frozen=True):
    url: str
    content_type: str | None = None  # as the provider announced it, if it did


class Result(msgspec.Struct, kw_only=True):
    """What `fetch` found: the job's state, and when completed its files."""

    status: Progress
    files: list[ResultFile] = []
    seconds: float | None = None  # the output's duration as the provider reports it


class Download:
    """One result file being read: iterate `chunks()` once, then it is closed."""

    def __init__(self, response: aiohttp.ClientResponse, content_type: str, slug: str) -> None:
        self._response = response
        self.content_type = content_type
        self._slug = slug

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_DOWNLOAD_CHUNK):
                yield chunk
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"the download from {self._slug} stalled") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", f"the download from {self._slug} broke off: {exc}") from exc
        finally:
            self._response.release()

    def close(self) -> None:
        self._response.release()


def seconds_extra(seconds: int | None) -> dict[str, str]:
    return {} if seconds is None else {"seconds": str(seconds)}


def whole_seconds(value: object) -> float | None:
    """A duration the provider reported ("8", 8, 8.2), or None when it is missing or nonsense."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def retry_hint(headers: Mapping[str, str]) -> float | None:
    hint = parse_retry_after(headers.get("Retry-After"))
    return float(hint) if hint is not None else None


class LongRunAdapter(ABC):
    kind: ClassVar[str]
    _session: aiohttp.ClientSession | None = None

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        parsed = urllib.parse.urlsplit(settings.base_url)
        self._origin = (parsed.scheme, parsed.netloc)

    @property
    def slug(self) -> str:
        return self.settings.slug

    # --- what each provider module implements --------------------------------------------

    @abstractmethod
    async def submit(self, upstream_model: str, spec: Spec) -> Submitted: ...

    @abstractmethod
    async def poll(self, handle: LongRunHandle) -> Progress: ...

    @abstractmethod
    async def fetch(self, handle: LongRunHandle) -> Result: ...

    @abstractmethod
    async def cancel(self, handle: LongRunHandle) -> Progress:
        """Stop the job; a job that already ended answers its final state instead."""

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The provider's credentials, sent on API calls and on downloads from its own origin."""

    error_factory: ErrorFactory = staticmethod(status_error)

    # --- shared plumbing -----------------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.settings.max_connections, ttl_dns_cache=300,
                                         keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.settings.connect_timeout_s,
                                        sock_read=self.settings.read_timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, url: str, payload: Any = None) -> tuple[dict[str, Any], Mapping[str, str]]:
        """One API call; the decoded JSON object of a successful answer, and its headers."""
        assert self._session is not None, "adapter used before start()"
        headers = {**self.auth_headers(), "Content-Type": "application/json"}
        data = _encode(payload) if payload is not None else None
        try:
            async with self._session.request(method, url, data=data, headers=headers,
                                             allow_redirects=False) as response:
                body = await response.read()
                status, answer_headers = response.status, response.headers
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"no answer from {self.slug} in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("connection", f"cannot reach {self.slug}: {exc}") from exc
        if status >= 400:
            raise self.error_factory(status, body, answer_headers)
        if status >= 300:
            raise UpstreamError("malformed", f"{self.slug} answered an API call with a redirect ({status})")
        try:
            answer = _decode(body) if body.strip() else {}
        except msgspec.DecodeError as exc:
            raise UpstreamError("malformed", f"{self.slug} answered with malformed JSON") from exc
        if not isinstance(answer, dict):
            raise UpstreamError("malformed", f"{self.slug} answered with JSON that is not an object")
        return answer, answer_headers

    def _own_origin(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return (parsed.scheme, parsed.netloc) == self._origin

    async def download(self, file: ResultFile) -> Download:
        """Open a result file; redirects are followed by hand so each hop is checked."""
        assert self._session is not None, "adapter used before start()"
        url = file.url
        for _ in range(_MAX_REDIRECTS + 1):
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise UpstreamError("malformed", f"{self.slug} pointed the result at a non-http(s) URL")
            headers = self.auth_headers() if self._own_origin(url) else {}
            try:
                response = await self._session.get(url, headers=headers, allow_redirects=False)
            except TimeoutError as exc:
                raise UpstreamError("timeout", f"no answer from {self.slug}'s result URL in time") from exc
            except (aiohttp.ClientError, ValueError) as exc:
                raise UpstreamError("connection", f"cannot download the result from {self.slug}: {exc}") from exc
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location", "")
                response.release()
                if not location:
                    raise UpstreamError("malformed", f"{self.slug} redirected the download nowhere")
                url = urllib.parse.urljoin(url, location)
                continue
            if response.status >= 400:
                try:
                    body = await response.read()
                except (TimeoutError, aiohttp.ClientError):
                    body = b""
                finally:
                    response.release()
                raise self.error_factory(response.status, body, response.headers)
            announced = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            content_type = announced if announced and announced != "application/octet-stream" else (
                file.content_type or announced or "application/octet-stream")
            return Download(response, content_type, self.slug)
        raise UpstreamError("malformed", f"{self.slug} redirected the download more than {_MAX_REDIRECTS} times")


def quote_id(value: str) -> str:
    """A provider id as one URL path segment."""
    return urllib.parse.quote(value, safe="")


def checked_path(value: str, what: str) -> str:
    """A provider model or operation name that spans path segments (`owner/name`, `fal-ai/x/y`)."""
    if not value or ".." in value or value.startswith("/") or any(c in value for c in "?#\\ \t\r\n"):
        raise UpstreamError("malformed", f"unusable {what} {value!r}", status=400)
    return urllib.parse.quote(value, safe="/+=:@,-._~")
