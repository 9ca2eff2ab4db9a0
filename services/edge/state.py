"""What an edge process holds while it runs (all of it rebuildable from NATS)."""

from dataclasses import dataclass

from aiohttp import web
from nats.aio.client import Client

from libs.contracts.in_process import InProcessRouter
from libs.runtime.blobs import BlobStore
from libs.runtime.tracing import Tracing
from services.edge.auth import KeyStore
from services.edge.idempotency import Idempotency
from services.edge.ratelimit import RateLimiter
from services.edge.settings import EdgeSettings
from services.edge.spend_caps import SpendCaps
from services.edge.stream_inbox import StreamInboxes
from services.edge.tenancy import Tenancy


@dataclass(slots=True)
class EdgeState:
    settings: EdgeSettings
    nc: Client
    keys: KeyStore
    tenancy: Tenancy
    limiter: RateLimiter
    blobs: BlobStore  # files and job results, streamed in and out by the edge itself
    idempotency: Idempotency
    spend: SpendCaps  # worst-case reservations against caps and wallets
    streams: StreamInboxes  # where streamed replies arrive
    tracing: Tracing  # off unless an exporter is configured (libs/runtime/tracing.py)
    router: InProcessRouter | None = None  # a router in this process (services/node/), else over NATS


EDGE = web.AppKey("edge", EdgeState)
