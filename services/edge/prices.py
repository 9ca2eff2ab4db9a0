"""Model prices at the edge, for reserving a request's worst-case cost against a spend cap.

The router owns the catalog; the edge asks it once (sb.catalog.list) and again every
`_REFRESH_S`, and keeps the prices and context windows in memory, so an estimate costs
no network hop. Worst case = the input estimate at the input price plus the output bound
at the output price, plus the markup, each line rounded up (the router rounds half-up,
so the estimate is never below what the same token counts are charged).
"""

import asyncio
import math

import msgspec
import structlog
from nats.aio.client import Client

from libs.contracts import subjects
from libs.contracts.bus import catalog as catalog_bus
from libs.contracts.bus.inference import Failure, Reply, decode_reply
from libs.contracts.config import load_config
from libs.contracts.http.chat import AUTO_MODEL
from libs.contracts.http.models import ModelList
from libs.runtime.background import BackgroundTask

log = structlog.get_logger()
_REFRESH_S = 60.0
_RETRY_S = 1.0
_TIMEOUT_S = 5.0
# The router's default markup (services/router/pricing.py) when the config sets none.
_DEFAULT_MARKUP_PERCENT = 5.0
_decode_models = msgspec.json.Decoder(ModelList).decode


class _Price(msgspec.Struct, frozen=True):
    input_per_mtok: float  # USD per million units
    output_per_mtok: float
    context_window: int | None


class Prices:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prices: dict[str, _Price] = {}
        # What `auto` may pick: the dearest text model's prices bound it.
        self._auto = _Price(0.0, 0.0, None)
        markup = load_config().metering.markup_percent
        self._markup_ppm = round((_DEFAULT_MARKUP_PERCENT if markup is None else markup) * 10_000)
        self._task = BackgroundTask("prices-refresh")
        self.loaded = asyncio.Event()

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self._load()
                self.loaded.set()
                await asyncio.sleep(_REFRESH_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no router yet: unknown models reserve the dearest known price
                log.warning("prices_load_failed", error=repr(exc))
                await asyncio.sleep(_RETRY_S)

    async def _load(self) -> None:
        msg = await self._nc.request(subjects.CATALOG_LIST, catalog_bus.encode(catalog_bus.ModelsQuery()),
                                     timeout=_TIMEOUT_S)
        reply = decode_reply(msg.data)
        if isinstance(reply, Failure) or not isinstance(reply, Reply):
            raise RuntimeError("the router did not list its catalog")
        prices: dict[str, _Price] = {}
        text: list[_Price] = []
        for card in _decode_models(reply.body).data:
            if card.pricing is None:
                continue
            price = prices[card.id] = _Price(card.pricing.input_per_mtok or 0.0, card.pricing.output_per_mtok or 0.0,
                                             card.context_window)
            if card.modality == "text":
                text.append(price)
        self._prices = prices
        self._auto = _Price(max((p.input_per_mtok for p in text), default=0.0),
                            max((p.output_per_mtok for p in text), default=0.0), None)

    def _price(self, model: str) -> _Price:
        if model == AUTO_MODEL:
            return self._auto
        # Not in the catalog: passed through unpriced, so nothing is charged for it.
        return self._prices.get(model, _Price(0.0, 0.0, None))

    def output_bound(self, model: str, input_units: int, default_units: int) -> int:
        """Output units reserved when the request sets no limit: `default_units`, or less when the
        model's context window leaves less. Not the whole window: a 1 M-token model would otherwise
        reserve dollars per request and refuse every unbounded request of a small cap. A request
        with no limit that writes more than this is part of the estimate error a cap may overshoot by."""
        window = self._price(model).context_window
        return max(min(window - input_units, default_units), 1) if window else default_units

    def worst_case(self, models: list[str], input_units: int, output_units: int) -> int:
        """Micro-dollars a request may cost at most if any of `models` serves it."""
        worst = 0
        for model in models:
            price = self._price(model)
            upstream = _line(input_units, price.input_per_mtok) + _line(output_units, price.output_per_mtok)
            worst = max(worst, upstream + math.ceil(upstream * self._markup_ppm / 1_000_000))
        return worst


def _line(units: int, usd_per_mtok: float) -> int:
    # USD per million units == micro-dollars per unit.
    return math.ceil(units * usd_per_mtok)
