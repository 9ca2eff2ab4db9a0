"""Provider health: what each router replica publishes to KV and what
GET /v1/health/providers returns (merged over replicas)."""

from typing import Literal

import msgspec

BreakerState = Literal["closed", "open", "half_open"]


class DeploymentHealth(msgspec.Struct, kw_only=True):
    deployment: str  # provider/upstream model
    provider: str
    model: str  # upstream model name
    state: BreakerState
    requests: int  # in the replica's recent window
    failures: int
    success_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None


class HealthSnapshot(msgspec.Struct, kw_only=True):
    """One router replica's view, refreshed every few seconds."""

    replica: str
    updated_ms: int
    deployments: list[DeploymentHealth]


class ProvidersHealth(msgspec.Struct, kw_only=True):
    """The public answer: every deployment, merged over the replicas that reported recently."""

    data: list[DeploymentHealth]
    replicas: int
    object: str = "provider_health"


encode = msgspec.json.Encoder().encode
decode_snapshot = msgspec.json.Decoder(HealthSnapshot).decode
