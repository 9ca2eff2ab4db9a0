"""Which deployment a request tries, and in what order; whether to try again.

Order: the model's own deployments, then each fallback model's (config
`fallbacks`, or the request's OpenRouter-style `models: [...]`). Within a tier
the next deployment is picked by weighted power-of-two-choices: draw two by
weight, keep the one with the lower observed latency (an untried one counts as
fastest, so new deployments get traffic). Deployments whose breaker is open are
skipped; if that leaves nothing at all, the one that reopens soonest is tried
anyway, as a probe, rather than failing without a call.
"""

import random
from collections.abc import Callable, Iterator

import msgspec

from libs.contracts.config import RouterConfig
from services.router.catalog import Catalog, Plan, Route
from services.router.health import HealthBook
from services.router.providers.base import UpstreamError


class RetryPolicy(msgspec.Struct, frozen=True):
    retries: int = 1
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0

    @classmethod
    def from_config(cls, config: RouterConfig) -> "RetryPolicy":
        return cls(retries=config.retries if config.retries is not None else 1,
                   backoff_base_s=(config.backoff_base_ms or 100.0) / 1000,
                   backoff_max_s=(config.backoff_max_ms or 2000.0) / 1000)

    def delay(self, attempt: int, exc: UpstreamError, rng: random.Random) -> float | None:
        """Seconds before retrying the same deployment, or None to move on to the next one."""
        if attempt >= self.retries or exc.kind == "timeout":
            return None  # a timed-out call already spent its time budget: try elsewhere
        if exc.retry_after is not None:
            return float(exc.retry_after) if exc.retry_after <= self.backoff_max_s else None
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt) * rng.uniform(0.5, 1.0)


def retryable(exc: UpstreamError) -> bool:
    """Worth another deployment: the provider failed, not the request."""
    if exc.kind in ("timeout", "connection", "saturated"):  # saturated: another provider has its own pool
        return True
    if exc.kind == "malformed":
        return exc.status != 400
    return exc.status is not None and (exc.status in (408, 429) or exc.status >= 500)


def _pick(options: list[Route], latency: Callable[[str], float | None], rng: random.Random) -> Route:
    if len(options) == 1:
        return options[0]
    first, second = rng.choices(options, weights=[r.weight for r in options], k=2)
    if first is second:
        return first
    a, b = latency(first.key), latency(second.key)
    return first if (a or 0.0) <= (b or 0.0) else second


def candidates(catalog: Catalog, plan: Plan, extra_models: list[str], health: HealthBook,
               rng: random.Random) -> Iterator[Route]:
    tiers: list[tuple[Route, ...]] = [plan.deployments]
    for slug in [*extra_models, *plan.fallbacks]:
        try:
            tiers.append(catalog.plan(slug).deployments)
        except Exception:  # an unknown fallback is skipped, not fatal
            continue
    skipped: list[Route] = []
    yielded = False
    seen: set[tuple[str, str]] = set()
    for tier in tiers:
        remaining = [r for r in tier if (r.slug, r.key) not in seen]
        while remaining:
            route = _pick(remaining, health.latency_ms, rng)
            remaining.remove(route)
            seen.add((route.slug, route.key))
            if health.allow(route.key):
                yielded = True
                yield route
            else:
                skipped.append(route)
    if not yielded and skipped:
        yield min(skipped, key=lambda r: health.reopens_in(r.key))
