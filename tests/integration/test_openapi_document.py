"""The served OpenAPI document and llms.txt against the live edge.

Route coverage starts from the live app's `app.router.routes()`: the edge's own
`build_app` runs in this process against the test gateway's NATS (no second HTTP server,
no stub), and every (method, path) it registers must be in the route table, documented
or excluded with a reason, and the reverse. The served document must describe exactly the
routes the table documents, and every path of the AIgateway contract with the same method.
"""

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from services.edge.app import build_app
from services.edge.openapi.registry import ROUTES
from services.edge.openapi.served import Pair, differences, plain, served
from services.edge.settings import EdgeSettings
from tests.integration.cluster import Cluster, eventually

CONTRACT = Path(__file__).resolve().parents[1] / "contract" / "aigateway-openapi.json"
_METHODS = ("get", "post", "put", "patch", "delete")


def _origin(gateway: Cluster) -> str:
    return gateway.base_url.removesuffix("/v1")


def _live_routes(gateway: Cluster) -> tuple[set[Pair], set[Pair], set[Pair]]:
    """The live app's routes, and how they differ from the table."""

    async def build() -> tuple[set[Pair], set[Pair], set[Pair]]:
        settings = EdgeSettings(host="127.0.0.1", port=0, nats_url=gateway.env["SWITCHBOARD_NATS_URL"],
                                request_timeout_s=5.0, stream_idle_timeout_s=5.0, max_body_bytes=1024 * 1024,
                                admin_key=None, access_log=False, snapshots=True, spend_leases=False)
        app = await build_app(settings)
        try:
            missing, stale = differences(app, ROUTES)
            return served(app), missing, stale
        finally:
            app.freeze()
            await app.cleanup()  # its on_cleanup closes the NATS connection and the mirrors

    return asyncio.run(build())


@pytest.fixture(scope="module")
def live(gateway: Cluster) -> tuple[set[Pair], set[Pair], set[Pair]]:
    return _live_routes(gateway)


@pytest.fixture(scope="module")
def document(gateway: Cluster) -> dict[str, Any]:
    response = httpx.get(f"{_origin(gateway)}/openapi.json", timeout=15)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _documented(document: dict[str, Any]) -> set[Pair]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in _METHODS}


def _shape(path: str) -> str:
    """A path with its parameters unnamed: the contract says {jobId} where we say {job_id}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_served_route_is_in_the_table_and_the_reverse(live: tuple[set[Pair], set[Pair], set[Pair]]) -> None:
    routes, missing, stale = live
    assert ("POST", "/v1/chat/completions") in routes and ("GET", "/v1/models/{model_id}") in routes
    assert not missing, f"served but not in services/edge/openapi/ (add an entry): {sorted(missing)}"
    assert not stale, f"in the route table but not served (remove it): {sorted(stale)}"


def test_the_document_describes_exactly_the_documented_routes(
        document: dict[str, Any], live: tuple[set[Pair], set[Pair], set[Pair]]) -> None:
    routes = live[0]
    excluded = {(r.method, plain(r.aiohttp_path)) for r in ROUTES if r.excluded is not None}
    assert _documented(document) == routes - excluded
    reasons = {(e["method"], plain(e["path"])): e["reason"] for e in document["x-excluded-routes"]}
    assert set(reasons) == excluded and all(reasons.values())


def test_every_contract_path_appears_with_its_method(document: dict[str, Any]) -> None:
    contract = json.loads(CONTRACT.read_text())
    ours = {(method, _shape(path)) for method, path in _documented(document)}
    wanted = {(method.upper(), _shape("/v1" + path)) for path, item in contract["paths"].items()
              for method in item if method in _METHODS}
    assert wanted - ours == set()


def test_both_paths_serve_one_valid_document(gateway: Cluster, document: dict[str, Any]) -> None:
    assert list(jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(document)) == []
    assert document["servers"] == [{"url": _origin(gateway), "description": "This gateway"}]
    again = httpx.get(f"{gateway.base_url}/openapi.json", timeout=15)
    assert again.status_code == 200 and again.json() == document
    assert again.headers["X-Request-Id"]


def test_the_document_needs_no_key_and_ignores_a_wrong_one(gateway: Cluster) -> None:
    response = httpx.get(f"{_origin(gateway)}/openapi.json", headers={"Authorization": "Bearer sk-wrong"},
                         timeout=15)
    assert response.status_code == 200 and response.json()["openapi"] == "3.1.0"


def test_the_servers_url_is_the_origin_the_client_used(gateway: Cluster) -> None:
    port = gateway.edge_ports[0]
    response = httpx.get(f"http://localhost:{port}/openapi.json", timeout=15)
    assert response.json()["servers"][0]["url"] == f"http://localhost:{port}"


def test_other_methods_on_the_description_are_enveloped_405s(gateway: Cluster) -> None:
    for path in ("/openapi.json", "/v1/openapi.json", "/llms.txt"):
        response = httpx.post(f"{_origin(gateway)}{path}", content=b"{", timeout=15)
        assert response.status_code == 405
        assert response.json()["error"]["code"] == 405


def test_llms_txt_lists_the_routes_and_the_live_catalog(gateway: Cluster) -> None:
    response = httpx.get(f"{_origin(gateway)}/llms.txt", timeout=15)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert text.startswith("# Switchboard\n\n> ")
    assert f"[POST /v1/chat/completions]({_origin(gateway)}/openapi.json#" in text
    models = httpx.get(f"{gateway.base_url}/models", headers={"Authorization": f"Bearer {gateway.admin_key}"},
                       timeout=15).json()["data"]
    assert models
    for model in models:
        assert f"- [{model['id']}]({_origin(gateway)}/v1/models/{model['id']}): " in text


def _conforms(document: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """`response` is what the document says `method path` answers: a documented status and media
    type, the required headers, and (JSON) a body valid against its schema."""
    answers = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in answers, f"{method} {path}: {response.status_code} is not documented"
    answer = answers[str(response.status_code)]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    for name, ref in answer.get("headers", {}).items():
        header = document["components"]["headers"][ref["$ref"].rsplit("/", 1)[-1]]
        assert not header["required"] or name in response.headers, f"{method} {path}: no {name}"
    media = response.headers["content-type"].split(";", 1)[0].strip()
    main = media.split("/", 1)[0]
    documented = [m for m in answer["content"] if m in (media, f"{main}/*", "*/*")]
    assert documented, f"{method} {path}: {media} is not documented ({list(answer['content'])})"
    if media == "application/json":
        schema = {**answer["content"][documented[0]]["schema"], "components": document["components"]}
        jsonschema.Draft202012Validator(schema).validate(response.json())


def test_streamed_answers_and_downloads_conform_and_carry_the_request_id(
        gateway: Cluster, document: dict[str, Any]) -> None:
    """What fuzzing seldom reaches: a finished video and its content, a stream, a file download."""
    headers = {"Authorization": f"Bearer {gateway.admin_key}"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=15) as client:
        created = client.post("/videos", json={"prompt": "a kite", "model": "sim/video-sim"})
        _conforms(document, "POST", "/v1/videos", created)
        video_id = created.json()["id"]

        def finished() -> httpx.Response | None:
            answer = client.get(f"/videos/{video_id}")
            return answer if answer.json().get("status") == "completed" else None

        _conforms(document, "GET", "/v1/videos/{id}", eventually(finished, timeout_s=30))
        content = client.get(f"/videos/{video_id}/content", headers={"X-Request-Id": "req-video-content"})
        assert content.status_code == 200 and content.content
        assert content.headers["X-Request-Id"] == "req-video-content"
        _conforms(document, "GET", "/v1/videos/{id}/content", content)

        stream = client.post("/chat/completions", json={"model": "sim/gpt-sim", "stream": True, "max_tokens": 8,
                                                        "messages": [{"role": "user", "content": "hi"}]})
        _conforms(document, "POST", "/v1/chat/completions", stream)
        assert "data: [DONE]" in stream.text

        uploaded = client.post("/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"hello")})
        _conforms(document, "POST", "/v1/files", uploaded)
        download = client.get(f"/files/{uploaded.json()['id']}/content", headers={"Range": "bytes=1-2"})
        assert download.status_code == 206 and download.content == b"el"
        _conforms(document, "GET", "/v1/files/{id}/content", download)

        purged = client.delete("/cache")
        _conforms(document, "DELETE", "/v1/cache", purged)
        assert purged.json()["object"] == "cache.purge"
