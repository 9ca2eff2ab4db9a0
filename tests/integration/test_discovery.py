"""The discovery endpoints: GET /v1/gateway/models (per-surface catalogues), GET /v1/providers
(providers, their models and health) and GET /v1/health (the whole gateway's readiness)."""

from typing import Any

import httpx
import pytest

from libs.contracts.http.discovery import SURFACE_NAMES, SURFACES
from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually

SIX = ["chat", "embeddings", "images", "video", "audio", "moderations"]
COMPONENTS = {"nats", "key_mirror", "router", "ledger", "jobs", "webhooks"}


def _models(gateway: Cluster, **params: Any) -> list[dict[str, Any]]:
    response = call(gateway, "GET", "/models", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _health(gateway: Cluster, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{gateway.base_url}/health", headers=headers or {}, timeout=15)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def _component(health: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in health["components"] if c["name"] == name)


def test_every_surface_by_default_each_with_its_catalog_models(gateway: Cluster) -> None:
    response = call(gateway, "GET", "/gateway/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert [s["endpoint"] for s in body["data"]] == list(SURFACE_NAMES)
    catalog = _models(gateway)
    for surface, answered in zip(SURFACES, body["data"], strict=True):
        expected = [m for m in catalog if m["modality"] in surface.modalities]
        assert answered["models"] == expected, surface.name
        assert answered["paths"] == list(surface.paths)
    chat = body["data"][0]
    assert "sim/gpt-sim" in {m["id"] for m in chat["models"]} and "/v1/chat/completions" in chat["paths"]
    # Every catalogued model is on some surface.
    assert {m["id"] for s in body["data"] for m in s["models"]} == {m["id"] for m in catalog}


def test_the_six_ai_stats_surfaces_in_the_order_asked(gateway: Cluster) -> None:
    response = call(gateway, "GET", "/gateway/models", params={"endpoints": ",".join(SIX)})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [s["endpoint"] for s in data] == SIX
    audio = {m["id"] for m in data[SIX.index("audio")]["models"]}
    assert {"sim/whisper-sim", "sim/tts-sim"} <= audio
    assert {m["id"] for m in data[SIX.index("moderations")]["models"]} == {
        m["id"] for m in _models(gateway, modality="moderation")}
    # Repeated names count once; the parameter may also be repeated; spaces are forgiven.
    again = call(gateway, "GET", "/gateway/models?endpoints=images,%20chat,images&endpoints=audio").json()["data"]
    assert [s["endpoint"] for s in again] == ["images", "chat", "audio"]


@pytest.mark.parametrize("value", ["bogus", "chat,bogus", "", ",", "Chat", "à", "a.b", "*", ">", "x" * 300])
def test_unknown_endpoints_value_is_a_400(gateway: Cluster, value: str) -> None:
    response = call(gateway, "GET", "/gateway/models", params={"endpoints": value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400 and error["param"] == "endpoints"
    assert "chat, embeddings, images" in error["message"]
    assert len(error["message"]) < 300  # a long value is not echoed whole


@pytest.mark.parametrize("path", ["/gateway/models", "/providers"])
def test_catalog_routes_need_a_valid_key(gateway: Cluster, path: str) -> None:
    assert httpx.get(f"{gateway.base_url}{path}", timeout=15).status_code == 401
    wrong = call(gateway, "GET", path, key="sk-aig-not-a-key")
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"


def test_providers_list_catalog_models_and_health(gateway: Cluster) -> None:
    client = gateway.client()
    client.chat.completions.create(model="sim/gpt-sim", messages=[{"role": "user", "content": "hi"}])
    # sim/ha's first deployment always fails over to the config-declared provider "local".
    client.chat.completions.create(model="sim/ha", messages=[{"role": "user", "content": "hi"}])

    def served() -> dict[str, Any] | None:
        body = call(gateway, "GET", "/providers").json()
        by_id = {p["id"]: p for p in body["data"]}
        return body if "local" in by_id and by_id["sim"]["health"]["requests"] else None

    body = eventually(served, 15)
    assert body["object"] == "list"
    by_id = {p["id"]: p for p in body["data"]}
    assert [p["id"] for p in body["data"]] == sorted(by_id)
    health = call(gateway, "GET", "/health/providers").json()["data"]
    for provider in body["data"]:
        assert provider["object"] == "provider"
        assert provider["models"] == [m["id"] for m in _models(gateway, provider=provider["id"])]
        deployments = [d for d in health if d["provider"] == provider["id"]]
        assert provider["health"]["deployments"] == deployments
        assert provider["health"]["requests"] == sum(d["requests"] for d in deployments)
        assert provider["health"]["failures"] == sum(d["failures"] for d in deployments)
    sim = by_id["sim"]
    assert {"text", "embedding", "image"} <= set(sim["modalities"])
    assert sim["health"]["status"] in ("healthy", "degraded")
    assert 0 < sim["health"]["success_rate"] <= 1
    # "local" has no catalog model of its own: it is listed for the traffic it served.
    local = by_id["local"]
    assert local["models"] == [] and local["health"]["status"] == "healthy"
    assert local["health"]["failures"] == 0 and local["health"]["success_rate"] == 1.0


def test_health_answers_without_a_key(gateway: Cluster) -> None:
    health = _health(gateway)
    assert health["object"] == "gateway.health" and health["status"] == "ok"
    assert {c["name"] for c in health["components"]} == COMPONENTS
    assert all(c["ok"] and c["detail"] is None for c in health["components"])
    assert all(_component(health, name)["latency_ms"] >= 0 for name in ("router", "ledger", "jobs", "webhooks"))
    # A key, right or wrong, changes nothing: the answer holds no tenant data.
    assert _health(gateway, {"Authorization": "Bearer sk-aig-wrong"})["status"] == "ok"


def test_health_names_what_is_down_and_answers_without_nats(private_gateway: Cluster) -> None:
    gw = private_gateway
    assert _health(gw)["status"] == "ok"
    gw.jobs[0].stop()
    gw.webhooks[0].stop()

    def degraded() -> dict[str, Any] | None:
        health = _health(gw)
        return health if not _component(health, "webhooks")["ok"] else None

    health = eventually(degraded, 10)
    assert health["status"] == "degraded"
    for name in ("jobs", "webhooks"):
        assert _component(health, name) == {"name": name, "ok": False, "latency_ms": None,
                                             "detail": "no replica is running"}
    assert all(_component(health, name)["ok"] for name in ("nats", "key_mirror", "router", "ledger"))

    gw.nats.stop()

    def cut_off() -> dict[str, Any] | None:
        health = _health(gw)
        return health if not _component(health, "nats")["ok"] else None

    health = eventually(cut_off, 10)
    assert health["status"] == "degraded"
    assert _component(health, "key_mirror")["ok"]  # the keys already loaded stay usable
    for name in ("router", "ledger"):
        assert _component(health, name)["detail"] == "the edge is not connected to NATS"
