"""Prices from the catalog and what one request costs, in integer micro-dollars.

Integer money means the ledger's totals equal the sum of the X-Cost-Cents the
clients saw, to the last micro-dollar. Each line is rounded half-up on its own;
the markup is a percentage of the upstream lines' sum.
"""

import msgspec

from libs.contracts.bus.inference import Cost, Usage
from libs.contracts.config import MeteringConfig, ModelConfig
from libs.runtime.env import env_float

_MICROS_PER_USD = 1_000_000
_TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens
DEFAULT_MARKUP_PERCENT = 5.0
DEFAULT_CACHE_HIT_FRACTION = 0.10
DEFAULT_BATCH_DISCOUNT_PERCENT = 50.0  # SWITCHBOARD_BATCH_DISCOUNT_PERCENT overrides it


class Price(msgspec.Struct, frozen=True):
    """Micro-dollars per million units."""

    input: int
    output: int
    cached_input: int


class Pricing(msgspec.Struct, frozen=True):
    markup_ppm: int  # parts per million: 5 % = 50_000
    cache_hit_ppm: int
    batch_ppm: int = 500_000  # what a batch line pays, in parts per million of the full price

    @classmethod
    def from_config(cls, config: MeteringConfig) -> "Pricing":
        markup = DEFAULT_MARKUP_PERCENT if config.markup_percent is None else config.markup_percent
        fraction = DEFAULT_CACHE_HIT_FRACTION if config.cache_hit_fraction is None else config.cache_hit_fraction
        if markup < 0 or not 0 <= fraction <= 1:
            raise SystemExit("switchboard: metering.markup_percent must be >= 0 and cache_hit_fraction in [0, 1]")
        discount = env_float("SWITCHBOARD_BATCH_DISCOUNT_PERCENT", DEFAULT_BATCH_DISCOUNT_PERCENT)
        if not 0 <= discount <= 100:
            raise SystemExit("switchboard: SWITCHBOARD_BATCH_DISCOUNT_PERCENT must be in [0, 100]")
        return cls(markup_ppm=round(markup * 10_000), cache_hit_ppm=round(fraction * 1_000_000),
                   batch_ppm=1_000_000 - round(discount * 10_000))

    def cost(self, price: Price | None, usage: Usage | None, *, succeeded: bool, cache_hit: bool = False,
             batch: bool = False) -> Cost:
        if price is None:
            return Cost(priced=False)
        if not succeeded or usage is None:
            return Cost()
        cached = min(usage.cached_units, usage.input_units)
        lines = [
            _line(usage.input_units - cached, price.input),
            _line(usage.output_units, price.output),
            _line(cached, price.cached_input),
        ]
        if cache_hit:
            lines = [_scale(line, self.cache_hit_ppm) for line in lines]
        if batch:  # a batch line: every upstream line at the discount, the markup on what is left
            lines = [_scale(line, self.batch_ppm) for line in lines]
        upstream = sum(lines)
        markup = _scale(upstream, self.markup_ppm)
        return Cost(input_micros=lines[0], output_micros=lines[1], cached_micros=lines[2], markup_micros=markup,
                    total_micros=upstream + markup)


def price_of(model: ModelConfig) -> Price | None:
    if model.input_per_mtok is None:
        return None
    cached = model.cached_input_per_mtok if model.cached_input_per_mtok is not None else model.input_per_mtok
    return Price(input=_usd_to_micros(model.input_per_mtok), output=_usd_to_micros(model.output_per_mtok or 0.0),
                 cached_input=_usd_to_micros(cached))


def _usd_to_micros(usd: float) -> int:
    return round(usd * _MICROS_PER_USD)


def _line(units: int, micros_per_mtok: int) -> int:
    return (units * micros_per_mtok + _TOKENS_PER_PRICE_UNIT // 2) // _TOKENS_PER_PRICE_UNIT


def _scale(micros: int, ppm: int) -> int:
    return (micros * ppm + 500_000) // 1_000_000

