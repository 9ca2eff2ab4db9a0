"""What the app actually serves against what the route table says, as (method, path) pairs.

The route-coverage test compares the two on a live app; the edge also logs any difference
once at startup, so a route added without a table entry is visible before a test runs.
"""

import re
from collections.abc import Iterable

import structlog
from aiohttp import web

from services.edge.openapi.table import Route

log = structlog.get_logger()
_REGEX = re.compile(r"\{(\w+):[^}]*\}")
Pair = tuple[str, str]


def plain(path: str) -> str:
    """`/v1/models/{model_id:.+}` as `/v1/models/{model_id}` (what aiohttp's `canonical` says)."""
    return _REGEX.sub(r"{\1}", path)


def served(app: web.Application) -> set[Pair]:
    """Every route of `app`; the HEAD aiohttp adds beside each GET is the GET's."""
    pairs = {(route.method, plain(route.resource.canonical)) for route in app.router.routes()
             if route.resource is not None}
    gets = {path for method, path in pairs if method == "GET"}
    return {(method, path) for method, path in pairs if not (method == "HEAD" and path in gets)}


def tabled(routes: Iterable[Route]) -> set[Pair]:
    return {(route.method, plain(route.aiohttp_path)) for route in routes}


def differences(app: web.Application, routes: Iterable[Route]) -> tuple[set[Pair], set[Pair]]:
    """(served but not in the table, in the table but not served)."""
    have, told = served(app), tabled(routes)
    return have - told, told - have


def log_differences(app: web.Application, routes: Iterable[Route]) -> None:
    missing, stale = differences(app, routes)
    if missing or stale:
        log.warning("api_description_out_of_date", not_in_route_table=sorted(missing),
                    in_table_not_served=sorted(stale))
