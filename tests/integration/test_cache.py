"""The exact response cache: hit, miss, force, skip, purge, streams, metering at the hit fraction."""

import json
import secrets

import openai
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster


def _ask(client: openai.OpenAI, text: str, mode: str | None = None, **kwargs: object) -> object:
    headers = {"x-cache": mode} if mode else None
    return client.chat.completions.with_raw_response.create(
        model="sim/gpt-sim", messages=[{"role": "user", "content": text}], extra_headers=headers, **kwargs)


def test_deterministic_requests_are_cached_and_billed_at_the_hit_fraction(gateway: Cluster) -> None:
    client = gateway.client()
    text = f"cache me {secrets.token_hex(4)}"
    gateway.clear_sim_journal()
    first = _ask(client, text, temperature=0)
    second = _ask(client, text, temperature=0)
    assert first.headers["X-Cache-Status"] == "miss; type=exact"
    assert second.headers["X-Cache-Status"] == "hit; type=exact"
    assert len(gateway.sim_journal()) == 1  # the hit never reached the provider
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    full = json.loads(first.http_response.text)["meta"]["cost"]["total_micros"]
    hit = json.loads(second.http_response.text)["meta"]["cost"]["total_micros"]
    assert full > 0 and hit == pytest.approx(full * 0.1, abs=2)
    record = generation(gateway, second.headers["X-Request-Id"])
    assert record["cache_hit"] is True and record["cost"]["total_micros"] == hit


def test_auto_does_not_cache_sampled_requests_force_and_skip_do_what_they_say(gateway: Cluster) -> None:
    client = gateway.client()
    text = f"sampled {secrets.token_hex(4)}"
    assert "X-Cache-Status" not in _ask(client, text).headers  # temperature unset: provider default, not cached
    assert "X-Cache-Status" not in _ask(client, text).headers
    assert _ask(client, text, "force").headers["X-Cache-Status"] == "miss; type=exact"
    assert _ask(client, text, "force").headers["X-Cache-Status"] == "hit; type=exact"
    assert "X-Cache-Status" not in _ask(client, text, "skip", temperature=0).headers
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, text, "always")
    assert err.value.body["param"] == "x-cache"


def test_streams_fill_and_are_served_from_the_cache(gateway: Cluster) -> None:
    client = gateway.client()
    text = f"stream cache {secrets.token_hex(4)}"
    messages = [{"role": "user", "content": text}]
    first = list(client.chat.completions.create(model="sim/gpt-sim", messages=messages, stream=True,
                                                temperature=0))
    with client.chat.completions.with_streaming_response.create(
            model="sim/gpt-sim", messages=messages, stream=True, temperature=0,
            stream_options={"include_usage": True}) as response:
        assert response.headers["X-Cache-Status"] == "hit; type=exact"
        lines = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    replay = "".join(c["choices"][0]["delta"].get("content") or "" for c in lines if c["choices"])
    assert replay == "".join(c.choices[0].delta.content or "" for c in first if c.choices) == f"Echo: {text}"
    assert lines[-1]["choices"] == [] and lines[-1]["meta"]["cost"]["total_micros"] >= 0
    # The non-stream form of the same request is the same cache entry.
    assert _ask(client, text, temperature=0).headers["X-Cache-Status"] == "hit; type=exact"


def test_cache_is_per_sub_account_and_purge_empties_the_account(gateway: Cluster) -> None:
    text = f"tenant {secrets.token_hex(4)}"
    alice = create_sub_account(gateway, name="cache-alice")
    bob = create_sub_account(gateway, name="cache-bob")
    assert _ask(gateway.client(key=alice["key"]), text, temperature=0).headers["X-Cache-Status"].startswith("miss")
    assert _ask(gateway.client(key=bob["key"]), text, temperature=0).headers["X-Cache-Status"].startswith("miss")
    assert _ask(gateway.client(key=alice["key"]), text, temperature=0).headers["X-Cache-Status"].startswith("hit")
    assert call(gateway, "DELETE", "/cache", alice["key"]).status_code == 403  # admin only
    purged = call(gateway, "DELETE", "/cache").json()
    assert purged["object"] == "cache.purge" and purged["deleted"] >= 2
    assert _ask(gateway.client(key=alice["key"]), text, temperature=0).headers["X-Cache-Status"].startswith("miss")
