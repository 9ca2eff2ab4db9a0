"""Every error row of the contract, seen through the openai SDK (status, type, exception class)."""

import time

import httpx
import openai
import pytest

from tests.integration.cluster import EDGE_TIMEOUT_S, MAX_BODY_BYTES, Cluster

USER = [{"role": "user", "content": "hi"}]


def _post(gateway: Cluster, path: str, content: bytes, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gateway.admin_key}", "Content-Type": "application/json"}
    return httpx.post(f"{gateway.base_url}{path}", content=content, headers=headers, timeout=10)


def _assert_envelope(response: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_ and error["code"] == status and error["message"]
    assert response.headers["X-Request-Id"]
    return error


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
def test_malformed_json_is_400(gateway: Cluster, body: bytes) -> None:
    _assert_envelope(_post(gateway, "/chat/completions", body), 400, "invalid_request_error")


def test_schema_violation_names_the_field(gateway: Cluster) -> None:
    error = _assert_envelope(_post(gateway, "/chat/completions", b'{"model": "openai/gpt-4o"}'),
                             400, "invalid_request_error")
    assert "messages" in error["message"] and error["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "robot", "content": "x"}])
    assert err.value.body["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o", messages=USER, temperature=7)
    assert err.value.body["param"] == "temperature"


def test_missing_and_unknown_keys_are_401(gateway: Cluster) -> None:
    response = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "x", "messages": USER})
    _assert_envelope(response, 401, "authentication_error")
    with pytest.raises(openai.AuthenticationError) as err:
        gateway.client(key="sk-aig-not-a-real-key").chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert err.value.status_code == 401 and err.value.body["type"] == "authentication_error"


def test_unknown_model_is_404_with_a_hint(gateway: Cluster) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client().chat.completions.create(model="nosuch/model-x", messages=USER)
    assert err.value.body["type"] == "model_not_found" and "/v1/models" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client().chat.completions.create(model="gpt-4o", messages=USER)
    assert "provider/model" in err.value.body["message"]


def test_unconfigured_provider_is_404_saying_how_to_enable_it(gateway: Cluster) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client().chat.completions.create(model="groq/llama-3.3-70b-versatile", messages=USER)
    assert err.value.body["type"] == "model_not_found" and "GROQ_API_KEY" in err.value.body["message"]


@pytest.mark.parametrize("upstream_status", [500, 502, 503])
def test_upstream_5xx_is_502_provider_error(gateway: Cluster, upstream_status: int) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model=f"openai/gpt-4o+status={upstream_status}", messages=USER)
    assert err.value.status_code == 502 and err.value.body["type"] == "provider_error"
    assert err.value.response.headers["X-Provider"] == "openai"


def test_upstream_429_is_429_with_retry_after(gateway: Cluster) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o+status=429+retry_after=7", messages=USER)
    assert err.value.body["type"] == "rate_limit_error"
    assert err.value.response.headers["Retry-After"] == "7"


def test_upstream_timeout_is_504(gateway: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o+latency=10000", messages=USER)
    assert err.value.status_code == 504 and err.value.body["type"] == "timeout_error"
    assert time.monotonic() - started < EDGE_TIMEOUT_S


def test_upstream_hang_in_stream_is_504_before_first_byte(gateway: Cluster) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        list(gateway.client().chat.completions.create(model="openai/gpt-4o+hang", messages=USER, stream=True))
    assert err.value.status_code == 504


@pytest.mark.parametrize("directive", ["malformed", "reset"])
def test_broken_upstream_answer_is_502(gateway: Cluster, directive: str) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model=f"openai/gpt-4o+{directive}", messages=USER)
    assert err.value.status_code == 502 and err.value.body["type"] == "provider_error"


def test_upstream_4xx_keeps_its_status(gateway: Cluster) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o+status=422", messages=USER)
    assert err.value.body["type"] == "invalid_request_error"


def test_stream_failing_before_first_byte_gets_a_real_status(gateway: Cluster) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        list(gateway.client().chat.completions.create(model="openai/gpt-4o+status=503", messages=USER, stream=True))
    assert err.value.status_code == 502


@pytest.mark.parametrize("directive", ["die_after=2", "malformed"])
def test_stream_dying_midway_ends_with_an_error_event(gateway: Cluster, directive: str) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIError) as err:
        for chunk in gateway.client().chat.completions.create(
                model=f"openai/gpt-4o+{directive}", messages=[{"role": "user", "content": "a b c d e f g"}],
                stream=True):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "provider" in str(err.value).lower() or "stream" in str(err.value).lower()
    assert "".join(received) != "Echo: a b c d e f g"  # the client knows it did not get everything


def test_oversized_body_is_413(gateway: Cluster) -> None:
    big = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "' + b"x" * MAX_BODY_BYTES + b'"}]}'
    _assert_envelope(_post(gateway, "/chat/completions", big), 413, "invalid_request_error")


def test_unknown_path_and_method_are_enveloped(gateway: Cluster) -> None:
    _assert_envelope(_post(gateway, "/no/such/thing", b"{}"), 404, "invalid_request_error")
    response = httpx.get(f"{gateway.base_url}/chat/completions")
    _assert_envelope(response, 405, "invalid_request_error")


def test_a_streamed_chat_cannot_also_have_a_webhook_url(gateway: Cluster) -> None:
    # With webhook_url a chat completion is an async job (tests/integration/test_jobs_chat.py);
    # there is no stream to deliver to, so asking for both is the client's mistake.
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True,
                                                 extra_body={"webhook_url": "https://example.com/hook"})
    assert err.value.body["param"] == "stream"
