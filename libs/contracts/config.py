"""Schema of the optional TOML config file named by SWITCHBOARD_CONFIG.

Every section is optional; environment variables fill what the file leaves out
(see README "Configuration"). Each service reads the sections it owns.
"""

import os
from pathlib import Path

import msgspec


class EdgeConfig(msgspec.Struct, forbid_unknown_fields=True):
    port: int | None = None
    host: str | None = None
    # How long the edge waits for the router before answering 504 itself. Must
    # exceed the router's upstream read timeout so the router's own, more
    # precise error normally arrives first.
    request_timeout_s: float | None = None
    max_body_bytes: int | None = None


class RouterConfig(msgspec.Struct, forbid_unknown_fields=True):
    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None
    max_connections_per_provider: int | None = None  # default 4096 (a stream holds one throughout)
    pool_timeout_s: float | None = None  # wait for a free pooled connection before a 503 (default 1)
    # Resilience: retries of one deployment, then the next deployment, then fallbacks.
    retries: int | None = None  # extra attempts on the same deployment (default 1)
    backoff_base_ms: float | None = None  # first retry delay, doubled each time, with jitter (default 100)
    backoff_max_ms: float | None = None  # cap, also on an upstream Retry-After (default 2000)
    breaker_failures: int | None = None  # consecutive failures that open a deployment's breaker (default 5)
    breaker_cooldown_s: float | None = None  # open time before a half-open probe (default 30)


class MeteringConfig(msgspec.Struct, forbid_unknown_fields=True):
    markup_percent: float | None = None  # platform fee on top of upstream cost (default 5)
    cache_hit_fraction: float | None = None  # share of the uncached price a cache hit bills (default 0.10)


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=True):
    """An upstream provider; `slug` is the prefix of its model ids (`slug/model`)."""

    slug: str
    base_url: str | None = None
    # Name of the environment variable holding the key (keys never live in the file).
    api_key_env: str | None = None
    kind: str = "openai"  # adapter module: openai-compatible wire format
    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None
    max_connections: int | None = None  # this provider's pool; default [router] max_connections_per_provider
    pool_timeout_s: float | None = None


class DeploymentConfig(msgspec.Struct, forbid_unknown_fields=True):
    """One place a model is served: a provider (its own key and base URL) and its name there."""

    provider: str
    upstream: str | None = None  # default: the model's upstream name
    weight: float = 1.0


class ModelConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A catalog entry added or overridden by the config file."""

    id: str
    upstream: str | None = None
    modality: str = "text"
    context_window: int | None = None
    capabilities: list[str] = []
    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    # Price of prompt tokens served from the provider's prompt cache; defaults to input_per_mtok.
    cached_input_per_mtok: float | None = None
    owned_by: str | None = None
    quality: int | None = None  # 0-100, for x-routing: quality / auto
    # Several deployments: load-balanced (weighted, latency-aware); default: the slug's provider only.
    deployments: list[DeploymentConfig] | None = None
    # Models tried, in order, when every deployment of this one failed (5xx, 429, timeout, connection).
    fallbacks: list[str] = []


class SwitchboardConfig(msgspec.Struct, forbid_unknown_fields=True):
    edge: EdgeConfig = msgspec.field(default_factory=EdgeConfig)
    router: RouterConfig = msgspec.field(default_factory=RouterConfig)
    metering: MeteringConfig = msgspec.field(default_factory=MeteringConfig)
    providers: list[ProviderConfig] = []
    models: list[ModelConfig] = []


def load_config(path: str | None = None) -> SwitchboardConfig:
    """Read SWITCHBOARD_CONFIG (or `path`); no file means all defaults."""
    path = path or os.environ.get("SWITCHBOARD_CONFIG")
    if not path:
        return SwitchboardConfig()
    try:
        return msgspec.toml.decode(Path(path).read_bytes(), type=SwitchboardConfig)
    except (OSError, msgspec.DecodeError) as exc:
        raise SystemExit(f"switchboard: cannot load config {path}: {exc}") from exc
