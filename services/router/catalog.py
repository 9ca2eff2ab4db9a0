"""The model catalog: slugs -> provider and upstream name, prices, capabilities.

Loaded from catalog/models.toml plus the config file's `[[models]]`; answers
the router's "where does this slug go" and the edge's /v1/models queries.
"""

from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from libs.contracts import errors
from libs.contracts.config import ModelConfig
from libs.contracts.http.models import ModelCard, ModelList, Pricing
from services.router.pricing import Price, price_of

DEFAULT_CATALOG = Path(__file__).resolve().parents[2] / "catalog" / "models.toml"


class Route(msgspec.Struct, frozen=True):
    """One deployment of a model: where a call for `slug` can go."""

    slug: str
    provider: str
    upstream_model: str
    price: Price | None = None  # None: unpriced (passed through, not in the catalog)
    weight: float = 1.0

    @property
    def key(self) -> str:
        """Identifies the deployment for breakers and health."""
        return f"{self.provider}/{self.upstream_model}"


class Plan(msgspec.Struct, frozen=True):
    """Everything a request for one slug may use: its enabled deployments, then its fallbacks."""

    deployments: tuple[Route, ...]
    fallbacks: tuple[str, ...] = ()


class RouteError(Exception):
    def __init__(self, status: int, type_: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.param = param


class _CatalogFile(msgspec.Struct):
    models: list[ModelConfig] = []


def _card(model: ModelConfig) -> ModelCard:
    provider, _, rest = model.id.partition("/")
    priced = model.input_per_mtok is not None
    return ModelCard(
        id=model.id,
        owned_by=model.owned_by or provider,
        provider=provider,
        upstream_model=model.upstream or rest,
        modality=model.modality,
        context_window=model.context_window,
        capabilities=list(model.capabilities),
        pricing=Pricing(model.input_per_mtok, model.output_per_mtok) if priced else None,
        priced=priced,
        quality=model.quality,
    )


class Catalog:
    def __init__(self, models: list[ModelConfig], enabled: set[str], hints: dict[str, str]) -> None:
        self._cards = {m.id: _card(m) for m in models}
        self._routes = {
            m.id: Route(m.id, self._cards[m.id].provider, self._cards[m.id].upstream_model, price_of(m))
            for m in models
        }
        self._plans = {m.id: self._plan_of(m, enabled) for m in models}
        self._enabled = enabled
        self._hints = hints

    def _plan_of(self, model: ModelConfig, enabled: set[str]) -> Plan:
        primary = self._routes[model.id]
        if not model.deployments:
            return Plan((primary,) if primary.provider in enabled else (), tuple(model.fallbacks))
        deployments = tuple(
            Route(model.id, d.provider, d.upstream or primary.upstream_model, primary.price, d.weight)
            for d in model.deployments if d.provider in enabled)
        return Plan(deployments, tuple(model.fallbacks))

    @classmethod
    def load(
        cls, path: Path, overrides: list[ModelConfig], enabled: set[str], hints: dict[str, str]
    ) -> "Catalog":
        base = msgspec.toml.decode(path.read_bytes(), type=_CatalogFile).models
        merged = {m.id: m for m in base}
        merged.update({m.id: m for m in overrides})
        return cls(list(merged.values()), enabled, hints)

    def auto_plan(self, modality: str, needs: set[str], policy: str, latency: Callable[[str], float | None],
                  tries: int = 3, evaluated: Mapping[str, float] | None = None) -> Plan:
        """The best few capable models for `policy`; the first serves, the others are its fallbacks.

        cost: cheapest (input + output price). speed: lowest observed latency, unmeasured
        models after measured ones, cheapest first among them. quality: highest score, where
        the caller's latest quality eval (`evaluated`, 0..1 per model) overrides the catalog's
        0-100 score. auto: the cheapest model at least as good as the median capable model.
        Only priced catalog models of enabled providers take part.
        """
        scored = {slug: round(score * 100) for slug, score in (evaluated or {}).items()}
        capable = [c for c in self._cards.values()
                   if c.provider in self._enabled and c.modality == modality and c.pricing is not None
                   and needs <= set(c.capabilities) and self._plans[c.id].deployments]
        if not capable:
            raise RouteError(404, errors.MODEL_NOT_FOUND,
                             f"No configured {modality} model offers {', '.join(sorted(needs)) or 'this'}; "
                             "name one with `model` (GET /v1/models lists them).")

        def cost(card: ModelCard) -> float:
            assert card.pricing is not None
            return (card.pricing.input_per_mtok or 0) + (card.pricing.output_per_mtok or 0)

        def speed(card: ModelCard) -> tuple[bool, float, float]:
            measured = latency(self._plans[card.id].deployments[0].key)
            return measured is None, measured or 0.0, cost(card)

        def quality(card: ModelCard) -> int:
            return scored.get(card.id, card.quality or 0)

        if policy == "speed":
            ranked = sorted(capable, key=speed)
        elif policy == "quality":
            ranked = sorted(capable, key=lambda c: (-quality(c), cost(c)))
        elif policy == "auto":
            scores = sorted(quality(c) for c in capable)
            median = scores[len(scores) // 2]
            ranked = sorted(capable, key=lambda c: (quality(c) < median, cost(c)))
        else:
            ranked = sorted(capable, key=lambda c: (cost(c), -quality(c)))
        chosen = ranked[:tries]
        return Plan(self._plans[chosen[0].id].deployments, tuple(c.id for c in chosen[1:]))

    def plan(self, slug: str) -> Plan:
        """The deployments for `slug` (404 like `resolve` when it has none) and its fallbacks."""
        plan = self._plans.get(slug)
        if plan is not None and plan.deployments:
            return plan
        return Plan((self.resolve(slug),), plan.fallbacks if plan is not None else ())

    def resolve(self, slug: str) -> Route:
        route = self._routes.get(slug)
        provider = route.provider if route else slug.partition("/")[0]
        if provider in self._enabled:
            if route is not None:
                return route
            upstream = slug.partition("/")[2]
            if not upstream:
                raise RouteError(404, errors.MODEL_NOT_FOUND,
                                 f"Model slug '{slug}' names no model after the provider. "
                                 "List models with GET /v1/models.")
            # Not in the catalog but under a configured provider: pass through, unpriced.
            return Route(slug, provider, upstream)
        raise self._not_found(slug, provider)

    def _not_found(self, slug: str, provider: str) -> RouteError:
        if "/" not in slug:
            msg = (f"Model '{slug}' is not a provider/model slug (e.g. openai/gpt-4o-mini). "
                   "List models with GET /v1/models.")
        elif provider in self._hints or any(c.provider == provider for c in self._cards.values()):
            how = f"set {self._hints[provider]}" if provider in self._hints else "declare it in the config file"
            msg = (f"Provider '{provider}' is not configured on this gateway ({how}). "
                   "List available models with GET /v1/models.")
        else:
            msg = f"Model '{slug}' not found. List available models with GET /v1/models."
        return RouteError(404, errors.MODEL_NOT_FOUND, msg)

    def catalogued(self, slug: str) -> bool:
        """In the catalog (with a known modality and price), not merely routable by provider prefix."""
        return slug in self._cards

    def known_card(self, slug: str) -> ModelCard | None:
        """The catalog's card for `slug` (enabled or not); None for a model passed through."""
        return self._cards.get(slug)

    def card(self, slug: str) -> ModelCard:
        route = self.resolve(slug)
        card = self._cards.get(slug)
        if card is not None:
            return card
        return ModelCard(id=slug, owned_by=route.provider, provider=route.provider,
                         upstream_model=route.upstream_model, priced=False)

    def listing(self, provider: str | None = None, modality: str | None = None) -> ModelList:
        cards = [
            c for c in self._cards.values()
            if c.provider in self._enabled
            and (provider is None or c.provider == provider)
            and (modality is None or c.modality == modality)
        ]
        return ModelList(data=sorted(cards, key=lambda c: c.id))
