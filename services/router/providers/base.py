"""The provider adapter interface: one subclass per upstream wire format.

An adapter turns the client's OpenAI-shaped body into the provider's request,
calls it over its own pooled aiohttp session, and hands back OpenAI-shaped bytes
(whole, or as SSE events). It raises UpstreamError for every failure so the
router maps failures to client errors in one place (router/failures.py).
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar, Literal

import msgspec

from libs.contracts.bus.inference import Usage

# "saturated": our own pool to the provider is full; never counted against the provider.
FailureKind = Literal["status", "timeout", "connection", "malformed", "saturated"]


class ProviderSettings(msgspec.Struct, frozen=True):
    slug: str
    kind: str
    base_url: str
    api_key: str
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    # Sized for thousands of concurrent streams: a stream holds its connection for its whole life.
    max_connections: int = 4096
    pool_timeout_s: float = 1.0  # the longest wait for a free pooled connection


class UpstreamError(Exception):
    def __init__(
        self,
        kind: FailureKind,
        message: str,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


class UpstreamResult(msgspec.Struct):
    status: int
    body: bytes
    latency_ms: float
    usage: Usage | None = None
    content_type: str = "application/json"


class UpstreamStream(ABC):
    """An open upstream stream; iterate for complete OpenAI-shaped SSE events (bytes).

    The stream's tail is withheld: no `data: [DONE]` and no usage-only chunk is
    yielded. The usage lands in `usage` (and the raw usage chunk, if the
    provider sent one, in `usage_chunk`) so the router can meter it and write
    the tail itself, with the cost, only if the client asked for usage.
    """

    ttfb_ms: float = 0.0
    usage: Usage | None = None
    usage_chunk: bytes | None = None

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class ProviderAdapter(ABC):
    kind: ClassVar[str]
    operations: ClassVar[frozenset[str]]

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings

    @property
    def slug(self) -> str:
        return self.settings.slug

    @abstractmethod
    async def start(self) -> None:
        """Open pooled connections; called once before the first request."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def complete(self, operation: str, upstream_model: str, body: bytes,
                       content_type: str | None = None) -> UpstreamResult:
        """One whole answer. `content_type` is the client's, for bodies that are not JSON (forms)."""

    @abstractmethod
    async def open_stream(self, operation: str, upstream_model: str, body: bytes) -> UpstreamStream:
        """Start a streamed call; raises UpstreamError if it fails before the first byte."""
