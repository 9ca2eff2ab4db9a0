"""The `meta` object the gateway adds beside `usage` in JSON answers (and in the
final usage chunk of a stream): cost line by line and timing, as AI Stats
Gateway does. The OpenAI SDKs ignore unknown fields, so clients keep working."""

import msgspec


class MetaUsage(msgspec.Struct):
    input_units: int
    output_units: int
    cached_units: int


class MetaCost(msgspec.Struct):
    priced: bool
    input_micros: int
    output_micros: int
    cached_micros: int
    markup_micros: int
    total_micros: int
    total_cents: float
    currency: str = "USD"


class MetaTiming(msgspec.Struct):
    upstream_latency_ms: float
    total_latency_ms: float
    generation_ms: float
    tokens_per_second: float | None


class ResponseMeta(msgspec.Struct):
    request_id: str
    model: str
    provider: str
    usage: MetaUsage
    cost: MetaCost
    timing: MetaTiming
