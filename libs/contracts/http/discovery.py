"""Public bodies of the discovery endpoints (AI Stats Gateway's platform API):
GET /v1/gateway/models, GET /v1/providers and GET /v1/health."""

from typing import Final, Literal

import msgspec

from libs.contracts.bus.health import DeploymentHealth
from libs.contracts.http.models import ModelCard


class Surface(msgspec.Struct, frozen=True):
    """One `endpoints=` value of GET /v1/gateway/models: the catalog modalities it serves and its paths."""

    name: str
    modalities: tuple[str, ...]
    paths: tuple[str, ...]


# AI Stats Gateway's six surfaces, then ours (rerank, 3d), so every catalog modality has one.
# The utility endpoints (translations, classifications, detections, ocr) run on chat models.
SURFACES: Final[tuple[Surface, ...]] = (
    Surface("chat", ("text",), ("/v1/chat/completions", "/v1/responses", "/v1/messages")),
    Surface("embeddings", ("embedding",), ("/v1/embeddings",)),
    Surface("images", ("image",), ("/v1/images/generations", "/v1/images/edits")),
    Surface("video", ("video",), ("/v1/videos/generations", "/v1/videos")),
    Surface("audio", ("audio-stt", "audio-tts", "music"),
            ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech", "/v1/audio/music",
             "/v1/music/generate")),
    Surface("moderations", ("moderation",), ("/v1/moderations",)),
    Surface("rerank", ("rerank",), ("/v1/rerank",)),
    Surface("3d", ("3d",), ("/v1/3d/generations",)),
)
SURFACE_NAMES: Final[tuple[str, ...]] = tuple(surface.name for surface in SURFACES)


class SurfaceCatalog(msgspec.Struct):
    endpoint: str  # one of SURFACE_NAMES
    paths: list[str]
    models: list[ModelCard]
    object: str = "gateway.endpoint"


class GatewayModels(msgspec.Struct):
    """GET /v1/gateway/models: one catalogue per requested surface, in the order asked."""

    data: list[SurfaceCatalog]
    object: str = "list"


ProviderStatus = Literal["healthy", "degraded", "down", "unknown"]


class ProviderHealth(msgspec.Struct, kw_only=True):
    """A provider's deployments from GET /v1/health/providers, summed. `unknown`: no recent traffic;
    `down`: every deployment's breaker is open; `degraded`: some are open or half open."""

    status: ProviderStatus
    requests: int  # in the routers' recent window
    failures: int
    success_rate: float | None  # None without requests
    deployments: list[DeploymentHealth]


class ProviderView(msgspec.Struct, kw_only=True):
    id: str
    models: list[str]  # catalog slugs whose provider this is
    modalities: list[str]
    health: ProviderHealth
    object: str = "provider"


class ProviderList(msgspec.Struct):
    """GET /v1/providers: configured providers (those with catalog models or recent traffic)."""

    data: list[ProviderView]
    object: str = "list"


Component = Literal["nats", "key_mirror", "router", "ledger", "jobs", "webhooks"]


class ComponentHealth(msgspec.Struct, kw_only=True):
    name: Component
    ok: bool
    latency_ms: float | None = None  # the round trip of the check, for the services asked over the bus
    detail: str | None = None  # why not, when not ok


class GatewayHealth(msgspec.Struct, kw_only=True):
    """GET /v1/health: the answering edge's view of the whole gateway; `ok` when every component is."""

    status: Literal["ok", "degraded"]
    components: list[ComponentHealth]
    checked_at: float  # unix seconds; checks are shared for up to a second per edge
    object: str = "gateway.health"
