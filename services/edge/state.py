"""What an edge process holds while it runs (all of it rebuildable from NATS)."""

from dataclasses import dataclass

from aiohttp import web
from nats.aio.client import Client

from services.edge.auth import KeyStore
from services.edge.settings import EdgeSettings


@dataclass(slots=True)
class EdgeState:
    settings: EdgeSettings
    nc: Client
    keys: KeyStore


EDGE = web.AppKey("edge", EdgeState)
