"""Per-deployment health: circuit breakers, success rates and latency, kept per
router replica and shared through the KV bucket `sb_provider_health`.

Breaker: closed until `failures_to_open` consecutive failures; then open for
`cooldown_s`, during which the deployment is skipped; then half-open, letting
exactly one probe through: its success closes the breaker, its failure opens it
again. A deployment another replica reports open (in a snapshot younger than
`_REMOTE_FRESH_S`) is skipped too, so every replica stops hammering a dead
provider as soon as one has noticed.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable

import structlog
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus.health import (
    BreakerState,
    DeploymentHealth,
    HealthSnapshot,
    ProvidersHealth,
    decode_snapshot,
    encode,
)
from libs.runtime.background import BackgroundTask
from libs.runtime.kv_mirror import KvMirror

log = structlog.get_logger()
_WINDOW = 200  # recent calls kept per deployment for rates and percentiles
_REMOTE_FRESH_S = 10.0
_PUBLISH_EVERY_S = 2.0


class _Deployment:
    __slots__ = ("consecutive", "ewma_ms", "model", "opened_at", "outcomes", "probing", "provider", "state")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.state: BreakerState = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.probing = False
        self.ewma_ms: float | None = None
        self.outcomes: deque[tuple[bool, float]] = deque(maxlen=_WINDOW)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, -(-len(ordered) * q // 100) - 1)], 3)  # nearest rank


class HealthBook:
    def __init__(self, replica: str, failures_to_open: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.replica = replica
        self._failures_to_open = failures_to_open
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._deployments: dict[str, _Deployment] = {}
        self.remote: KvMirror[HealthSnapshot] = KvMirror(subjects.KV_PROVIDER_HEALTH, decode_snapshot)
        self._task = BackgroundTask("health-publish")

    def _get(self, key: str) -> _Deployment:
        entry = self._deployments.get(key)
        if entry is None:
            provider, _, model = key.partition("/")
            entry = self._deployments[key] = _Deployment(provider, model)
        return entry

    def allow(self, key: str) -> bool:
        """May a call go to this deployment now? (Takes the half-open probe slot if it is free.)"""
        entry = self._get(key)
        if entry.state == "open":
            if self._clock() - entry.opened_at < self._cooldown_s:
                return False
            entry.state, entry.probing = "half_open", False
        if entry.state == "half_open":
            if entry.probing:
                return False
            entry.probing = True
            return True
        return not self._remote_open(key)

    def release(self, key: str) -> None:
        """A call ended with no verdict on the provider (cancelled, or our own pool was full): if it
        held the half-open probe slot, the next call may probe instead."""
        entry = self._get(key)
        if entry.state == "half_open":
            entry.probing = False

    def _state(self, entry: _Deployment) -> BreakerState:
        """The state a call would meet now: an open breaker whose cooldown is over lets a probe
        through, so it is reported half-open even before a call has moved it there."""
        if entry.state == "open" and self._clock() - entry.opened_at >= self._cooldown_s:
            return "half_open"
        return entry.state

    def reopens_in(self, key: str) -> float:
        entry = self._get(key)
        return max(0.0, self._cooldown_s - (self._clock() - entry.opened_at)) if entry.state == "open" else 0.0

    def latency_ms(self, key: str) -> float | None:
        return self._get(key).ewma_ms

    def record(self, key: str, ok: bool, latency_ms: float) -> None:
        entry = self._get(key)
        entry.outcomes.append((ok, latency_ms))
        if ok:
            entry.ewma_ms = latency_ms if entry.ewma_ms is None else 0.8 * entry.ewma_ms + 0.2 * latency_ms
            entry.consecutive, entry.probing = 0, False
            if entry.state != "closed":
                log.info("breaker_closed", deployment=key)
            entry.state = "closed"
            return
        entry.consecutive += 1
        entry.probing = False
        if entry.state == "half_open" or entry.consecutive >= self._failures_to_open:
            if entry.state != "open":
                log.warning("breaker_opened", deployment=key, consecutive_failures=entry.consecutive)
            entry.state, entry.opened_at = "open", self._clock()

    def _remote_open(self, key: str) -> bool:
        now_ms = time.time() * 1000
        for snapshot in self.remote.entries.values():
            if snapshot.replica == self.replica or now_ms - snapshot.updated_ms > _REMOTE_FRESH_S * 1000:
                continue
            if any(d.deployment == key and d.state == "open" for d in snapshot.deployments):
                return True
        return False

    def snapshot(self) -> HealthSnapshot:
        rows = []
        for key, entry in sorted(self._deployments.items()):
            oks = [ms for ok, ms in entry.outcomes if ok]
            failures = sum(1 for ok, _ in entry.outcomes if not ok)
            total = len(entry.outcomes)
            rows.append(DeploymentHealth(
                deployment=key, provider=entry.provider, model=entry.model, state=self._state(entry), requests=total,
                failures=failures, success_rate=round((total - failures) / total, 4) if total else 1.0,
                p50_latency_ms=_percentile(oks, 50), p95_latency_ms=_percentile(oks, 95)))
        return HealthSnapshot(replica=self.replica, updated_ms=int(time.time() * 1000), deployments=rows)

    async def start(self, js: JetStreamContext) -> None:
        await self.remote.start(js)
        self._task.start(self._publish_loop())

    async def stop(self) -> None:
        await self._task.stop()
        await self.remote.stop()

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(_PUBLISH_EVERY_S)
            try:
                assert self.remote.kv is not None
                await self.remote.kv.put(self.replica, encode(self.snapshot()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the next round publishes again
                log.warning("health_publish_failed", error=repr(exc))

    def merged(self) -> ProvidersHealth:
        """All fresh snapshots (this replica's current one included), merged per deployment."""
        now_ms = time.time() * 1000
        snapshots = [s for s in self.remote.entries.values()
                     if s.replica != self.replica and now_ms - s.updated_ms <= _REMOTE_FRESH_S * 1000]
        snapshots.append(self.snapshot())
        merged: dict[str, DeploymentHealth] = {}
        severity = {"closed": 0, "half_open": 1, "open": 2}
        for snapshot in snapshots:
            for row in snapshot.deployments:
                seen = merged.get(row.deployment)
                if seen is None:
                    merged[row.deployment] = row
                    continue
                requests = seen.requests + row.requests
                failures = seen.failures + row.failures
                merged[row.deployment] = DeploymentHealth(
                    deployment=row.deployment, provider=row.provider, model=row.model,
                    state=max(seen.state, row.state, key=severity.__getitem__), requests=requests,
                    failures=failures, success_rate=round((requests - failures) / requests, 4) if requests else 1.0,
                    p50_latency_ms=_max(seen.p50_latency_ms, row.p50_latency_ms),
                    p95_latency_ms=_max(seen.p95_latency_ms, row.p95_latency_ms))
        return ProvidersHealth(data=sorted(merged.values(), key=lambda d: d.deployment), replicas=len(snapshots))


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
