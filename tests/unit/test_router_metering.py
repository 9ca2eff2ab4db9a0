"""Pricing in integer micro-dollars, the `meta` object, and the stream tail."""

import msgspec
import pytest

from libs.contracts.bus.inference import Cost, DispatchMeta, Usage
from libs.contracts.bus.usage import UsageBatch, UsageEvent, decode_batch, encode
from libs.contracts.config import MeteringConfig, ModelConfig
from libs.contracts.money import cents_header
from services.router.pricing import Price, Pricing, price_of
from services.router.response_meta import DONE_EVENT, build_meta, stream_tail, with_meta

DEFAULT = Pricing.from_config(MeteringConfig())
PRICE = Price(input=1_000_000, output=2_000_000, cached_input=500_000)  # $1 / $2 / $0.50 per M


def test_price_of_catalog_entries() -> None:
    assert price_of(ModelConfig(id="a/b", input_per_mtok=0.15, output_per_mtok=0.6)) == Price(150_000, 600_000,
                                                                                             150_000)
    assert price_of(ModelConfig(id="a/b", input_per_mtok=2.5, cached_input_per_mtok=1.25)) == Price(
        2_500_000, 0, 1_250_000)
    assert price_of(ModelConfig(id="a/b")) is None


def test_cost_lines_and_markup() -> None:
    cost = DEFAULT.cost(PRICE, Usage(input_units=1000, output_units=500, cached_units=200), succeeded=True)
    # 800 uncached in at $1/M = 800; 500 out at $2/M = 1000; 200 cached at $0.5/M = 100; 5 % of 1900 = 95.
    assert cost == Cost(input_micros=800, output_micros=1000, cached_micros=100, markup_micros=95, total_micros=1995)
    assert cents_header(cost.total_micros) == "0.1995"


def test_rounding_is_half_up_per_line() -> None:
    price = Price(input=150_000, output=600_000, cached_input=150_000)  # $0.15 / $0.60
    cost = DEFAULT.cost(price, Usage(input_units=3, output_units=1), succeeded=True)
    assert (cost.input_micros, cost.output_micros) == (0, 1)  # 0.45 -> 0, 0.6 -> 1
    assert cost.total_micros == 1


def test_failures_cost_nothing_and_unpriced_models_say_so() -> None:
    assert DEFAULT.cost(PRICE, Usage(10, 10), succeeded=False) == Cost()
    assert DEFAULT.cost(None, Usage(10, 10), succeeded=True) == Cost(priced=False)
    assert DEFAULT.cost(PRICE, None, succeeded=True).total_micros == 0


def test_cache_hits_bill_a_fraction() -> None:
    full = DEFAULT.cost(PRICE, Usage(10_000, 10_000), succeeded=True)
    hit = DEFAULT.cost(PRICE, Usage(10_000, 10_000), succeeded=True, cache_hit=True)
    assert (full.total_micros, hit.total_micros) == (31_500, 3_150)


def test_metering_config() -> None:
    pricing = Pricing.from_config(MeteringConfig(markup_percent=0, cache_hit_fraction=0.5))
    assert pricing.cost(PRICE, Usage(1_000_000, 0), succeeded=True).total_micros == 1_000_000
    with pytest.raises(SystemExit):
        Pricing.from_config(MeteringConfig(cache_hit_fraction=1.5))


def _meta() -> object:
    meta = DispatchMeta(model="m/x", provider="m", upstream_latency_ms=50.0, usage=Usage(4, 10),
                        cost=Cost(1, 2, 0, 0, 3))
    return build_meta("r1", meta, total_latency_ms=52.0, generation_ms=40.0)


def test_build_meta() -> None:
    meta = msgspec.to_builtins(_meta())
    assert meta["cost"]["total_micros"] == 3 and meta["cost"]["total_cents"] == 0.0003
    assert meta["timing"]["tokens_per_second"] == 250.0
    assert meta["usage"] == {"input_units": 4, "output_units": 10, "cached_units": 0}


def test_with_meta_splices_meta_into_any_object() -> None:
    meta = _meta()
    for body in (b'{"a": 1, "b": [1, {"c": "}"}]}\n', b"{}", b'  { "a" : "x" }  '):
        spliced = msgspec.json.decode(with_meta(body, meta))
        assert spliced["meta"]["request_id"] == "r1"
        assert {k: v for k, v in spliced.items() if k != "meta"} == msgspec.json.decode(body)
    assert with_meta(b"[1, 2]", meta) == b"[1, 2]"


def test_stream_tail() -> None:
    chunk = b'{"choices":[],"usage":{"prompt_tokens":4}}'
    tail = stream_tail(chunk, _meta(), include_usage=True)
    assert tail.endswith(DONE_EVENT)
    first = msgspec.json.decode(tail.split(b"\n\n")[0][len(b"data: "):])
    assert first["usage"] == {"prompt_tokens": 4} and first["meta"]["request_id"] == "r1"
    assert stream_tail(chunk, _meta(), include_usage=False) == DONE_EVENT
    assert stream_tail(None, _meta(), include_usage=True) == DONE_EVENT


def test_usage_messages_decode_as_batches_or_single_events() -> None:
    event = UsageEvent(request_id="r", ts_ms=1, account_id="a", key_id="k", operation="chat", requested_model="m/x",
                       model="m/x", provider="m", status=200)
    assert decode_batch(encode(UsageBatch([event, event]))).events == [event, event]
    assert decode_batch(encode(event)).events == [event]
    with pytest.raises(msgspec.DecodeError):
        decode_batch(b"\xc1")
