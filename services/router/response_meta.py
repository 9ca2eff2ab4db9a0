"""The `meta` object added to answers, and the tail written at the end of a stream."""

import msgspec

from libs.contracts.bus.inference import Cost, DispatchMeta, Usage
from libs.contracts.http.meta import MetaCost, MetaTiming, MetaUsage, ResponseMeta
from libs.contracts.money import cents

DONE_EVENT = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def build_meta(request_id: str, meta: DispatchMeta, total_latency_ms: float, generation_ms: float) -> ResponseMeta:
    usage = meta.usage or Usage()
    cost = meta.cost or Cost(priced=False)
    tps = usage.output_units / (generation_ms / 1000) if generation_ms > 0 and usage.output_units else None
    return ResponseMeta(
        request_id=request_id,
        model=meta.model,
        provider=meta.provider,
        usage=MetaUsage(usage.input_units, usage.output_units, usage.cached_units),
        cost=MetaCost(priced=cost.priced, input_micros=cost.input_micros, output_micros=cost.output_micros,
                      cached_micros=cost.cached_micros, markup_micros=cost.markup_micros,
                      total_micros=cost.total_micros, total_cents=cents(cost.total_micros)),
        timing=MetaTiming(upstream_latency_ms=round(meta.upstream_latency_ms, 3),
                          total_latency_ms=round(total_latency_ms, 3), generation_ms=round(generation_ms, 3),
                          tokens_per_second=round(tps, 2) if tps is not None else None),
    )


def with_meta(body: bytes, meta: ResponseMeta) -> bytes:
    """The JSON object `body` with `meta` appended as its last member.

    Spliced in before the closing brace rather than decoded and re-encoded: the
    adapter has already proved the body is a well-formed JSON object, and this
    runs on every answer.
    """
    head = body.rstrip()
    if not head.endswith(b"}"):
        return body  # not an object: leave it alone
    head = head[:-1].rstrip()
    separator = b"" if head.endswith(b"{") else b","
    return head + separator + b'"meta":' + _encode(meta) + b"}"


def stream_tail(usage_chunk: bytes | None, meta: ResponseMeta, include_usage: bool) -> bytes:
    if include_usage and usage_chunk is not None:
        return b"data: " + with_meta(usage_chunk, meta) + b"\n\n" + DONE_EVENT
    return DONE_EVENT
