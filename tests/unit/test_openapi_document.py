"""The OpenAPI document built from the route table: valid OpenAPI 3.1 (the 3.1 meta-schema
that schemathesis ships), valid JSON Schema 2020-12 in every component, every $ref resolving,
and a table whose entries agree with themselves (unique operations, declared path parameters)."""

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

from libs.contracts.http.webhook_events import DELIVERED
from services.edge.openapi.document import TAGS, build_document, openapi_path, with_server
from services.edge.openapi.handlers import Description
from services.edge.openapi.registry import ROUTES
from services.edge.openapi.table import ERROR_DESCRIPTIONS, READ_HEADERS, SENT_HEADERS

SERVER = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Through JSON, as a client sees it: tuples become lists, no Python objects are left.
    return json.loads(msgspec.json.encode(with_server(build_document(ROUTES), SERVER)))


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"external $ref {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": SERVER, "description": "This gateway"}]


def test_the_meta_schema_check_catches_a_broken_document(document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    broken["paths"]["/v1/models"]["get"]["parameters"][0]["in"] = "body"
    assert not jsonschema.Draft202012Validator(OPENAPI_31).is_valid(broken)


def test_every_component_is_valid_json_schema(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        assert re.fullmatch(r"[A-Za-z0-9_]+", name), f"{name} is no identifier for a generated client"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/ErrorEnvelope" in refs
    for ref in refs:
        _resolve(document, ref)


def test_every_error_status_answers_the_envelope(document: dict[str, Any]) -> None:
    for status in ERROR_DESCRIPTIONS:
        error = document["components"]["responses"][f"Error{status}"]
        assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    envelope = document["components"]["schemas"]["ErrorBody"]
    assert set(envelope["required"]) == {"message", "type", "code"}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert chat["402"] == {"$ref": "#/components/responses/Error402"}
    assert "text/event-stream" in chat["200"]["content"]


def test_the_table_has_one_entry_per_operation() -> None:
    keys = [(r.method, openapi_path(r)) for r in ROUTES]
    assert len(keys) == len(set(keys))
    ids = [r.operation_id for r in ROUTES]
    assert len(ids) == len(set(ids))


def test_path_parameters_match_the_path_templates() -> None:
    for route in (r for r in ROUTES if r.excluded is None):
        template = set(re.findall(r"\{(\w+)(?::[^}]*)?\}", route.path))
        declared = {p.name for p in route.params if p.where == "path"}
        assert template == declared, f"{route.method} {route.path}: template {template}, declared {declared}"


def test_entries_use_the_shared_vocabulary() -> None:
    for route in ROUTES:
        assert route.excluded is None or route.excluded.strip(), route.operation_id
        assert route.tag in TAGS, route.operation_id
        assert set(route.reads) <= set(READ_HEADERS), route.operation_id
        for answer in route.answers:
            assert set(answer.headers) <= set(SENT_HEADERS), route.operation_id
            assert answer.kind == "empty" or answer.types, route.operation_id
        assert set(route.errors) <= set(ERROR_DESCRIPTIONS), route.operation_id


def test_security_follows_the_auth_of_each_route(document: dict[str, Any]) -> None:
    for route in (r for r in ROUTES if r.excluded is None):
        operation = document["paths"][openapi_path(route)][route.method.lower()]
        keyless = route.auth in ("none", "signed")
        assert (operation["security"] == []) == keyless, route.operation_id
        assert ("401" in operation["responses"]) != keyless, route.operation_id
    assert document["paths"]["/v1/sub-accounts"]["post"]["x-aig-scope"] == "admin"


def test_webhooks_describe_every_delivered_event(document: dict[str, Any]) -> None:
    assert set(document["webhooks"]) == set(DELIVERED)
    completed = document["webhooks"]["job.completed"]["post"]
    assert {p["name"] for p in completed["parameters"]} >= {
        "x-aig-signature", "x-aig-event-type", "x-aig-delivery-id", "x-aig-attempt"}
    body = _resolve(document, completed["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert body["properties"]["data"] == {"$ref": "#/components/schemas/Job"}
    assert "oneOf" in document["webhooks"]["key.rotated"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]


def test_shared_struct_names_get_readable_component_names(document: dict[str, Any]) -> None:
    names = document["components"]["schemas"]
    assert {"AccountsDeleted", "WebhooksDeleted"} <= set(names)
    assert not [n for n in names if "." in n]


def test_the_document_is_built_once_per_process() -> None:
    description = Description(ROUTES)
    first = description.openapi_bytes(SERVER)
    assert description.openapi_bytes(SERVER) is first
    assert description.document() is description.document()
    other = json.loads(description.openapi_bytes("https://gw.example.com"))
    assert other["servers"][0]["url"] == "https://gw.example.com"


def test_the_kept_origins_are_bounded() -> None:
    description = Description(ROUTES)
    for n in range(100):
        description.openapi_bytes(f"http://host-{n}")
    assert len(description._served) <= 16
