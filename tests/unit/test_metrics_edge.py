"""services/edge/metrics.py on a real aiohttp app with the edge's error_middleware: route
patterns (never raw paths), statuses of GatewayErrors and crashes, refusals by reason, open
event streams."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts import errors
from libs.runtime.metrics_dir import MULTIPROC_ENV
from services.edge.errors import MAX_BODY, REQUEST_IDS, GatewayError, RequestIds, error_middleware
from services.edge.metrics import EdgeMetrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
STREAMING = web.AppKey("streaming", asyncio.Event)
RELEASE = web.AppKey("release", asyncio.Event)


def value(metrics: EdgeMetrics, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(s.value for family in text_string_to_metric_families(metrics.render().decode())
               for s in family.samples if s.name == name and wanted <= set(s.labels.items()))


async def thing(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def refuse(_: web.Request) -> web.Response:
    raise GatewayError(402, errors.BUDGET_EXCEEDED, "cap reached", refusal="spend_cap")


async def provider_429(_: web.Request) -> web.Response:
    raise GatewayError(429, errors.RATE_LIMIT, "the provider is rate limiting")  # not the gateway's refusal


async def boom(_: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: {}\n\n")
    request.app[STREAMING].set()
    await request.app[RELEASE].wait()
    await response.write_eof()
    return response


async def download(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    await response.write(b"x" * 10)
    return response


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient, EdgeMetrics, web.Application]]:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    metrics = EdgeMetrics()
    app = web.Application(middlewares=[error_middleware])
    app[REQUEST_IDS], app[MAX_BODY] = RequestIds(), 1024
    app[STREAMING], app[RELEASE] = asyncio.Event(), asyncio.Event()
    app.middlewares.append(metrics.middleware())
    app.on_response_prepare.append(metrics.on_prepare)
    app.router.add_get("/v1/things/{thing_id}", thing)
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/provider", provider_429)
    app.router.add_get("/boom", boom)
    app.router.add_get("/stream", stream)
    app.router.add_get("/download", download)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, metrics, app
    finally:
        await client.close()


async def test_routes_are_patterns_and_statuses_are_what_the_client_got(served) -> None:  # type: ignore[no-untyped-def]
    client, metrics, _ = served
    for thing_id in ("a", "à", "a.b", "*", "x" * 300):
        assert (await client.get(f"/v1/things/{thing_id}")).status == 200
    assert (await client.get("/nowhere/at/all")).status == 404
    assert (await client.request("PROPFIND", "/v1/things/a")).status == 405
    assert (await client.get("/boom")).status == 500
    requests = "switchboard_edge_requests_total"
    assert value(metrics, requests, route="/v1/things/{thing_id}", method="GET", status="200") == 5
    assert value(metrics, requests, route="unmatched", method="GET", status="404") == 1
    assert value(metrics, requests, route="unmatched", method="_OTHER", status="405") == 1
    assert value(metrics, requests, route="/boom", status="500") == 1
    assert value(metrics, "switchboard_edge_request_duration_seconds_count", route="/v1/things/{thing_id}") == 5
    assert "nowhere" not in metrics.render().decode() and "xxxx" not in metrics.render().decode()


async def test_only_the_gateways_own_refusals_are_refusals(served) -> None:  # type: ignore[no-untyped-def]
    client, metrics, _ = served
    assert (await client.post("/refuse")).status == 402
    assert (await client.post("/provider")).status == 429
    assert value(metrics, "switchboard_edge_refusals_total", reason="spend_cap", status="402") == 1
    assert value(metrics, "switchboard_edge_refusals_total") == 1
    assert value(metrics, "switchboard_edge_requests_total", route="/provider", status="429") == 1


async def test_an_event_stream_is_open_until_it_ends(served) -> None:  # type: ignore[no-untyped-def]
    client, metrics, app = served
    response = await client.get("/stream")
    await asyncio.wait_for(app[STREAMING].wait(), 5)
    assert value(metrics, "switchboard_edge_open_streams", route="/stream") == 1
    app[RELEASE].set()
    await response.read()
    for _ in range(200):  # the handler's return reaches the middleware just after the last byte
        if value(metrics, "switchboard_edge_open_streams", route="/stream") == 0:
            break
        await asyncio.sleep(0.01)
    assert value(metrics, "switchboard_edge_open_streams", route="/stream") == 0
    assert (await (await client.get("/download")).read()) == b"x" * 10  # a byte stream is no event stream
    assert (await client.get("/v1/things/a")).status == 200
    assert value(metrics, "switchboard_edge_open_streams") == 0
    assert value(metrics, "switchboard_edge_requests_total", route="/stream", status="200") == 1
