"""Schemathesis against the gateway's own document (what GET /openapi.json serves).

Every documented operation gets a bounded number of generated requests with a fixed seed,
plus one request per operation that must be served for real. Beside the contract fuzz's
properties (no 5xx of our own making, every error the envelope; test_contract_fuzz.py),
every answer must conform to the document: a documented status, a documented media type,
a body valid against its schema, the documented headers. A failure is a gateway bug or a
wrong document, and either is fixed where it is.

The schema is loaded at import, from the same build the edge serves (a test below checks the
served bytes say the same): schemathesis' lazy loader (`from_fixture`) fails on pytest 9.
Private cluster: the fuzz rotates the webhook secret, deletes sub-accounts and purges the
cache. `GET /v1/requests/tail` is left out: its stream lasts until the client closes it.
"""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.edge.openapi.document import build_document, with_server
from services.edge.openapi.registry import ROUTES
from tests.integration.cluster import Cluster, cleanup, start_cluster
from tests.integration.test_contract_fuzz import (
    _SERVED,
    REQUEST_TIMEOUT_S,
    SIM_MODELS,
    error_envelope,
    not_our_server_error,
)

pytestmark = pytest.mark.one_process  # schemathesis' cases share node ids: no xdist
SEED = 20261201
MAX_EXAMPLES = 5  # per operation, with the schema's own examples
NEVER_ENDS = ("tailRequests",)  # a live stream: it answers, then lasts until the client hangs up
CHECKS = [not_our_server_error, error_envelope, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
_MODELS = {f"/v1{path}": model for path, model in SIM_MODELS.items()}
_CHAT = {"model": "sim/gpt-sim", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
_WAV = b"RIFF0000WAVEfmt "
# The contract fuzz's real requests (its paths under /v1), and ours for the extensions.
SERVED: dict[tuple[str, str], tuple[Any, str]] = {
    **{(method, f"/v1{path}"): example for (method, path), example in _SERVED.items()},
    ("POST", "/v1/messages"): (_CHAT, "application/json"),
    ("POST", "/v1/responses"): ({"model": "sim/gpt-sim", "input": "hi", "max_output_tokens": 16},
                                "application/json"),
    ("POST", "/v1/audio/translations"): ({"model": "sim/whisper-sim", "file": _WAV}, "multipart/form-data"),
    ("POST", "/v1/videos"): ({"prompt": "a cat", "model": "sim/video-sim"}, "application/json"),
    ("POST", "/v1/music/generate"): ({"prompt": "jazz", "model": "replicate/meta/musicgen"}, "application/json"),
    ("POST", "/v1/management/keys"): ({"name": "fuzzed", "scopes": ["inference"]}, "application/json"),
    ("POST", "/v1/balance/top-up"): ({"cents": 100}, "application/json"),
    ("POST", "/v1/messages/batches"): ({"requests": [{"custom_id": "a", "params": _CHAT}]}, "application/json"),
}


def _fill_model(context: schemathesis.HookContext, body: Any) -> Any:
    """As the contract fuzz does: a simulator model in about half the bodies that name a model."""
    operation = context.operation
    model = _MODELS.get(operation.path) if operation is not None else None
    if model is None or not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return body
    return {**body, "model": model} if len(body["model"]) % 2 == 0 else body


def _served_example(context: schemathesis.HookContext, examples: list[schemathesis.Case]) -> None:
    operation = context.operation
    served = SERVED.get((operation.method.upper(), operation.path)) if operation is not None else None
    if served is not None:
        body, media_type = served
        examples.append(operation.Case(body=body, media_type=media_type))


@pytest.fixture(scope="module")
def fuzzed_gateway() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cleanup(cluster)


def test_the_fuzzed_document_is_the_served_one(fuzzed_gateway: Cluster) -> None:
    response = httpx.get(f"{fuzzed_gateway.base_url.removesuffix('/v1')}/openapi.json", timeout=15)
    assert response.status_code == 200
    assert {**response.json(), "servers": DOCUMENT["servers"], "x-llms-txt": DOCUMENT["x-llms-txt"]} == DOCUMENT


def test_llms_txt_says_when_the_catalog_cannot_be_read(fuzzed_gateway: Cluster) -> None:
    """Runs first, before any llms.txt is cached: with no router, llms.txt still answers."""
    origin = fuzzed_gateway.base_url.removesuffix("/v1")
    router = fuzzed_gateway.routers[0]
    router.kill()
    try:
        response = httpx.get(f"{origin}/llms.txt", timeout=15)
        assert response.status_code == 200
        assert "the catalog could not be read just now" in response.text
        assert "[POST /v1/chat/completions]" in response.text
    finally:
        fuzzed_gateway.routers.remove(router)
        fuzzed_gateway.start_router()  # waits until it is ready


DOCUMENT: dict[str, Any] = json.loads(msgspec.json.encode(with_server(build_document(ROUTES), "http://127.0.0.1")))
# The coverage phase (every boundary case of every schema) doubled this file's time, which the suite's
# 15-minute budget cannot spare; examples and fuzzing stay. 405s: test_openapi_document.py.
CONFIG = schemathesis.Config.from_dict({"seed": SEED, "phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(operation_id=list(NEVER_ENDS))
schema.hook("map_body")(_fill_model)
schema.hook("before_add_examples")(_served_example)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
def test_openapi_fuzz(case: schemathesis.Case, fuzzed_gateway: Cluster) -> None:
    response = case.call(base_url=fuzzed_gateway.base_url.removesuffix("/v1"),
                         headers={"Authorization": f"Bearer {fuzzed_gateway.admin_key}"},
                         timeout=REQUEST_TIMEOUT_S)
    case.validate_response(response, checks=CHECKS)
    served = SERVED.get((case.method.upper(), case.path))
    if served is not None and case.body == served[0]:
        assert response.status_code < 300, f"the served example failed: {response.status_code} {response.text}"
