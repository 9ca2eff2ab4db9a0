"""Retries, failover between deployments, fallbacks, breakers and provider health."""

import time

import openai
import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import Cluster

USER = [{"role": "user", "content": "hello"}]


def _broken_deployment(gateway: Cluster) -> dict | None:
    rows = call(gateway, "GET", "/health/providers").json()["data"]
    return next((r for r in rows if r["deployment"] == "sim/gpt-sim+status=503"), None)


def test_failover_to_the_healthy_deployment_then_breaker_opens(gateway: Cluster) -> None:
    client = gateway.client()
    # Which deployment is tried first is random (power of two choices), so send requests until
    # the broken one has failed often enough to open its breaker; every one must still succeed.
    for _ in range(30):
        raw = client.chat.completions.with_raw_response.create(model="sim/ha", messages=USER)
        assert raw.parse().choices[0].message.content == "Echo: hello"
        assert raw.headers["X-Model"] == "sim/ha" and raw.headers["X-Provider"] == "local"
        row = _broken_deployment(gateway)
        if row is not None and row["state"] == "open":
            break
    assert row is not None and row["state"] == "open", row
    assert row["failures"] >= 5 and row["success_rate"] < 1
    record = generation(gateway, raw.headers["X-Request-Id"])
    assert (record["provider"], record["status"]) == ("local", 200)
    healthy = next(r for r in call(gateway, "GET", "/health/providers").json()["data"]
                   if r["deployment"] == "local/gpt-sim")
    assert healthy["state"] == "closed" and healthy["p50_latency_ms"] is not None
    # With the breaker open the broken deployment is not called at all.
    gateway.clear_sim_journal()
    client.chat.completions.create(model="sim/ha", messages=USER)
    assert [e["body"]["model"] for e in gateway.sim_journal()] == ["gpt-sim"]


def test_stream_fails_over_before_the_first_byte(gateway: Cluster) -> None:
    with gateway.client().chat.completions.with_streaming_response.create(
            model="sim/ha", messages=USER, stream=True) as response:
        assert response.headers["X-Provider"] == "local"
        assert b"Echo" in b"".join(response.iter_bytes())


def test_configured_fallback_model(gateway: Cluster) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="sim/flaky", messages=USER)
    assert raw.headers["X-Model"] == "sim/gpt-sim"
    assert raw.parse().choices[0].message.content == "Echo: hello"


def test_request_models_list_as_fallbacks(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="sim/gpt-sim+status=502", messages=USER, extra_body={"models": ["local/gpt-sim"]})
    assert (raw.headers["X-Model"], raw.headers["X-Provider"]) == ("local/gpt-sim", "local")
    assert all("models" not in e["body"] for e in gateway.sim_journal())  # never forwarded upstream


def test_retry_honours_retry_after_then_gives_up(gateway: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        gateway.client().chat.completions.create(model="sim/gpt-sim+status=429+retry_after=1", messages=USER)
    assert time.monotonic() - started >= 1.0  # one retry, after the provider's Retry-After


def test_client_errors_do_not_fail_over(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    with pytest.raises(openai.BadRequestError):
        gateway.client().chat.completions.create(model="sim/gpt-sim+status=400", messages=USER,
                                                 extra_body={"models": ["local/gpt-sim"]})
    assert len(gateway.sim_journal()) == 1


def test_every_deployment_down_reports_the_last_error(gateway: Cluster) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model="sim/gpt-sim+status=503", messages=USER,
                                                 extra_body={"models": ["local/gpt-sim+status=500"]})
    assert err.value.status_code == 502 and err.value.response.headers["X-Provider"] == "local"


def _cheapest(gateway: Cluster, need: str) -> str:
    cards = [m for m in gateway.client().models.list(extra_query={"modality": "text"})
             if need in m.model_extra["capabilities"] and m.model_extra["pricing"]]
    return min(cards, key=lambda m: m.model_extra["pricing"]["input_per_mtok"]
               + m.model_extra["pricing"]["output_per_mtok"]).id


def test_model_omitted_routes_by_x_routing(gateway: Cluster) -> None:
    client = gateway.client()
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER,
                                                            extra_headers={"x-routing": "cost"})
    assert raw.headers["X-Model"] == _cheapest(gateway, "chat")
    assert raw.parse().choices[0].message.content == "Echo: hello"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=USER, tools=tools,
                                                            extra_headers={"x-routing": "quality"})
    best = max((m for m in client.models.list(extra_query={"modality": "text"})
                if "tools" in m.model_extra["capabilities"] and m.model_extra["pricing"]),
               key=lambda m: m.model_extra["quality"] or 0)
    assert raw.headers["X-Model"] == best.id
    omitted = call(gateway, "POST", "/chat/completions", json={"messages": USER})  # no model at all
    assert omitted.status_code == 200 and omitted.headers["X-Model"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=USER, extra_headers={"x-routing": "fastest"})
    assert err.value.body["param"] == "x-routing"
