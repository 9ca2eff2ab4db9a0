"""Schemathesis against a live gateway with the public contract document.

Every operation of the contract (tests/contract/aigateway-openapi.json) gets a bounded number of
generated requests (valid and invalid), with a fixed seed so CI is repeatable. Two
properties must hold for every response:
- no 5xx of the gateway's own making: a 502/504 that relays a provider failure or
  timeout (`provider_error` / `timeout_error`) is truthful, a 500 or 503 is not;
- every 4xx/5xx body is the error envelope {"error": {"message", "type", "code"}}.

The fuzz runs on a private cluster: it rotates the webhook secret, purges the cache,
sets budgets and deletes sub-accounts, which would break tests sharing `gateway`.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.integration.cluster import Cluster, cleanup, start_cluster

# The pinned copy in the repository (tests/contract/README.md), so every clone fuzzes the same document.
_PINNED = Path(__file__).resolve().parents[1] / "contract" / "aigateway-openapi.json"
CONTRACT = _PINNED if _PINNED.exists() else None
pytestmark = pytest.mark.one_process  # schemathesis' cases share node ids: no xdist
SEED = 20240609
MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 15.0  # longer than the edge's own deadline: a timeout here is a hang
RELAYED_5XX = {(502, "provider_error"), (504, "timeout_error")}

# Models the simulator serves, per operation: bodies that name one reach real work.
SIM_MODELS = {
    "/chat/completions": "sim/gpt-sim",
    "/embeddings": "sim/embed-sim",
    "/images/generations": "sim/image-sim",
    "/audio/transcriptions": "sim/whisper-sim",
    "/audio/speech": "sim/tts-sim",
    "/moderations": "sim/moderation-sim",
    "/translations": "sim/gpt-sim",
    "/classifications": "sim/gpt-sim",
    "/detections": "sim/gpt-sim",
    "/ocr": "sim/gpt-sim",
    "/rerank": "sim/gpt-sim",
    "/videos/generations": "sim/video-sim",
    "/audio/music": "replicate/meta/musicgen",
    "/3d/generations": "fal/fal-ai/trellis",
    "/evals": "sim/gpt-sim",
    "/replays": "sim/gpt-sim",
    "/batches": "sim/gpt-sim",
}

config = schemathesis.Config.from_dict({"seed": SEED})
schema = schemathesis.openapi.from_path(str(CONTRACT), config=config) if CONTRACT is not None else None


def test_contract_document_is_found() -> None:
    assert CONTRACT is not None, "tests/contract/aigateway-openapi.json is missing"


def _fill_model(context: schemathesis.HookContext, body: Any) -> Any:
    """Name a simulator model in about half the bodies that name a model: the rest stay
    arbitrary and must come back as model_not_found envelopes."""
    operation = context.operation
    model = SIM_MODELS.get(operation.path) if operation is not None else None
    if model is None or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return body
    if len(body["model"]) % 2 == 0:
        return {**body, "model": model}
    return body


# One request per operation that the gateway must serve for real (the simulator answers),
# run first as explicit examples: the generated ones seldom pass validation end to end.
_IMAGE = {"image_url": "https://example.com/cat.png", "model": "sim/gpt-sim"}
_SERVED: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("POST", "/chat/completions"): ({"model": "sim/gpt-sim", "messages": [{"role": "user", "content": "hi"}],
                                     "max_tokens": 16}, "application/json"),
    ("POST", "/embeddings"): ({"model": "sim/embed-sim", "input": "hello"}, "application/json"),
    ("POST", "/images/generations"): ({"model": "sim/image-sim", "prompt": "a cat"}, "application/json"),
    ("POST", "/audio/transcriptions"): ({"model": "sim/whisper-sim", "file": b"RIFF0000WAVEfmt "},
                                        "multipart/form-data"),
    ("POST", "/audio/speech"): ({"model": "sim/tts-sim", "input": "hello"}, "application/json"),
    ("POST", "/moderations"): ({"model": "sim/moderation-sim", "input": "hello"}, "application/json"),
    ("POST", "/translations"): ({"text": "hello", "source_lang": "en", "target_lang": "fr", "model": "sim/gpt-sim"},
                                "application/json"),
    ("POST", "/classifications"): ({"input": "great product", "model": "sim/gpt-sim"}, "application/json"),
    ("POST", "/detections"): (_IMAGE, "application/json"),
    ("POST", "/ocr"): (_IMAGE, "application/json"),
    ("POST", "/rerank"): ({"query": "pets", "documents": ["cats", "tax"], "model": "sim/gpt-sim"},
                          "application/json"),
    ("POST", "/videos/generations"): ({"prompt": "a cat", "model": "sim/video-sim"}, "application/json"),
    ("POST", "/audio/music"): ({"prompt": "jazz", "model": "replicate/meta/musicgen"}, "application/json"),
    ("POST", "/3d/generations"): ({"prompt": "a chair", "model": "fal/fal-ai/trellis"}, "application/json"),
    ("POST", "/files"): ({"file": b"hello", "purpose": "assistants"}, "multipart/form-data"),
    ("POST", "/sub-accounts"): ({"name": "fuzzed", "spend_cap_cents": 1000}, "application/json"),
    ("POST", "/budgets"): ({"tag": "fuzzed", "cap_cents": 100000}, "application/json"),
    ("POST", "/evals"): ({"name": "fuzzed", "candidate_models": ["sim/gpt-sim"],
                          "dataset": [{"input": "hi", "expected": "hi"}], "metric": "quality"}, "application/json"),
}


def _served_example(context: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    operation = context.operation
    if operation is None:
        return
    served = _SERVED.get((operation.method.upper(), operation.path))
    if served is not None:
        body, media_type = served
        examples.append(operation.Case(body=body, media_type=media_type))


if schema is not None:
    schema.hook("map_body")(_fill_model)
    schema.hook("before_add_examples")(_served_example)


def _error_of(response: schemathesis.Response) -> dict[str, Any] | None:
    try:
        payload = json.loads(response.content)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def not_our_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                         case: schemathesis.Case) -> None:
    """A 5xx is fine only when it truthfully relays a provider failure or timeout."""
    if response.status_code < 500:
        return
    error = _error_of(response) or {}
    if (response.status_code, error.get("type")) not in RELAYED_5XX:
        raise AssertionError(f"gateway-made {response.status_code}: {response.content[:500]!r}")


def error_envelope(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                   case: schemathesis.Case) -> None:
    """Every 4xx/5xx is {"error": {"message": str, "type": str, "code": <the status>, ...}}."""
    if response.status_code < 400:
        return
    error = _error_of(response)
    assert error is not None, f"{response.status_code} is not an error envelope: {response.content[:500]!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message: {error}"
    assert isinstance(error.get("type"), str) and error["type"], f"no type: {error}"
    assert error.get("code") == response.status_code, f"code {error.get('code')} != {response.status_code}"
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers


@pytest.fixture(scope="module")
def fuzz_gateway() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cleanup(cluster)


if schema is not None:

    @schema.parametrize()
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    def test_contract_fuzz(case: schemathesis.Case, fuzz_gateway: Cluster) -> None:
        response = case.call(base_url=fuzz_gateway.base_url,
                             headers={"Authorization": f"Bearer {fuzz_gateway.admin_key}"},
                             timeout=REQUEST_TIMEOUT_S)
        case.validate_response(response, checks=[not_our_server_error, error_envelope])
        served = _SERVED.get((case.method.upper(), case.path))
        if served is not None and case.body == served[0]:
            assert response.status_code < 300, f"the served example failed: {response.status_code} {response.text}"
