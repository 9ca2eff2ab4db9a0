"""Simulator configuration."""

from __future__ import annotations

import msgspec


class SimSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Server-wide defaults; per-request directives override the timing fields."""

    latency_ms: float = 0.0
    """Delay before a non-streaming response is sent."""
    ttft_ms: float = 0.0
    """Delay before the first chunk of a streaming response."""
    tps: float = 0.0
    """Streaming pace in words (chunks) per second; 0 disables pacing."""
    api_key: str | None = None
    """When set, the bearer token must equal it; otherwise any bearer token is accepted."""
