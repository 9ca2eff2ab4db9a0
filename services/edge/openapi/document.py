"""The OpenAPI 3.1 document, built from the route table (registry.py) and the msgspec
contracts it names: every schema comes from `msgspec.json.schema_components`, so the
document says what the code decodes and encodes and cannot drift from it.

Built once per process (handlers.py caches it); nothing here runs per request.
"""

import re
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, Final

import msgspec

from libs.contracts.errors import ErrorEnvelope
from services.edge.openapi.events_doc import webhook_types, webhooks
from services.edge.openapi.table import (
    AUTH_NOTES,
    ERROR_DESCRIPTIONS,
    READ_HEADERS,
    SCOPES,
    SENT_HEADERS,
    Answer,
    Body,
    Param,
    Route,
)

REF: Final = "#/components/schemas/{name}"
_BINARY: Final = {"type": "string", "format": "binary"}
_TEXT: Final = {"type": "string"}
_KEYED: Final = [{"bearerAuth": []}, {"apiKeyAuth": []}]
_RETRY_AFTER_STATUSES: Final = (429, 503)
TAGS: Final = {
    "chat": "Chat completions, Anthropic Messages and OpenAI Responses on any provider (streaming, tools, vision)",
    "embeddings": "Text embeddings",
    "images": "Image generation and edits",
    "audio": "Speech to text, text to speech, music",
    "video": "Async video and 3D generation",
    "moderation": "Content safety",
    "modality-extra": "Translation, classification, detection, OCR, rerank (on a chat model)",
    "jobs": "Async job lifecycle",
    "files": "File upload, download, job results, signed URLs",
    "batches": "OpenAI's Batch API and Anthropic's Message Batches",
    "sub-accounts": "Per-customer scoped keys with spend caps and rate limits",
    "evals": "Eval-driven model routing",
    "replays": "Replay any past request on another model",
    "usage": "Cost attribution by tag and by sub-account, budgets, per-request usage",
    "webhooks": "Signed callbacks for jobs and lifecycle events",
    "account": "API keys, prepaid balance, cache",
    "models": "Catalog discovery",
    "health": "Provider health, liveness and readiness",
    "meta": "This description: the OpenAPI document and llms.txt",
}


class _Schemas:
    """Every type the document names, described in one schema_components call (shared
    components, one $ref each), then looked up by the type."""

    def __init__(self, types: Iterable[Any]) -> None:
        self._types: list[Any] = []
        for type_ in types:
            if not any(type_ is seen or type_ == seen for seen in self._types):
                self._types.append(type_)
        schemas, components = msgspec.json.schema_components(self._types, ref_template=REF)
        renames = _readable_names(components)
        self._schemas = [_renamed(s, renames) for s in schemas]
        self.components: dict[str, Any] = {}
        for name, schema in sorted(components.items()):
            schema = _renamed(schema, renames)
            if name in renames:  # generators name models by `title`: two "Deleted" would collide
                schema["title"] = renames[name]
            self.components[renames.get(name, name)] = schema

    def of(self, type_: Any) -> Any:
        if isinstance(type_, dict):
            return type_
        for index, seen in enumerate(self._types):
            if type_ is seen or type_ == seen:
                return self._schemas[index]
        raise KeyError(f"{type_!r} was not collected")


def _readable_names(components: dict[str, Any]) -> dict[str, str]:
    """msgspec names a Struct whose name another one shares by its module path
    (`libs.contracts.http.accounts.Deleted`): make that `AccountsDeleted`, a valid
    identifier for generated clients."""
    renames = {}
    for name in components:
        if "." in name:
            module, _, cls = name.rpartition(".")
            prefix = "".join(part.capitalize() for part in module.rsplit(".", 1)[-1].split("_"))
            renames[name] = prefix + cls
    return renames


def _renamed(value: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return value
    if isinstance(value, dict):
        out = {k: _renamed(v, renames) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.removeprefix("#/components/schemas/")
            out["$ref"] = REF.format(name=renames.get(name, name))
        return out
    if isinstance(value, list):
        return [_renamed(v, renames) for v in value]
    return value


def _types_of(routes: Sequence[Route]) -> Iterable[Any]:
    yield ErrorEnvelope
    for route in routes:
        for param in route.params:
            yield param.type
        if route.body is not None:
            yield from (t for _, t in route.body.media if not isinstance(t, dict))
        for answer in route.answers:
            yield from (t for _, t in answer.types if t is not None and not isinstance(t, dict))
    for name in (*READ_HEADERS, *SENT_HEADERS):
        yield (READ_HEADERS.get(name) or SENT_HEADERS[name])[0]
    yield from webhook_types()


def _parameter(param: Param, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"name": param.name, "in": param.where, "required": param.required or param.where == "path",
                           "schema": schemas.of(param.type)}
    if param.description:
        out["description"] = param.description
    return out


def _header_params(schemas: _Schemas) -> dict[str, Any]:
    """components.parameters: every header the edge reads, referenced by the operations that read it."""
    return {name: {"name": name, "in": "header", "required": False, "schema": schemas.of(type_),
                   "description": description} for name, (type_, description) in READ_HEADERS.items()}


def _sent_headers(schemas: _Schemas) -> dict[str, Any]:
    """components.headers: every header the edge sends (X-Request-Id on every answer)."""
    return {name: {"description": description, "required": name == "X-Request-Id", "schema": schemas.of(type_)}
            for name, (type_, description) in SENT_HEADERS.items()}


def _header_refs(names: Iterable[str]) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-Id", *names)}


def _body(body: Body, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"required": body.required,
                           "content": {media: {"schema": schemas.of(t)} for media, t in body.media}}
    if body.description:
        out["description"] = body.description
    return out


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description, "headers": _header_refs(answer.headers)}
    if answer.kind != "empty":
        out["content"] = {media: {"schema": _answer_schema(answer, t, schemas)} for media, t in answer.types}
    return out


def _answer_schema(answer: Answer, type_: Any, schemas: _Schemas) -> Any:
    if type_ is not None:
        return schemas.of(type_)
    if answer.kind in ("binary", "jsonl"):
        return _BINARY
    return _TEXT  # sse, text, html


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    auth = AUTH_NOTES[route.auth]
    description = f"{route.description}\n\nAuth: {auth}." if route.description else f"Auth: {auth}."
    out: dict[str, Any] = {"operationId": route.operation_id, "tags": [route.tag], "summary": route.summary,
                           "description": description, "security": _KEYED if route.auth in SCOPES else [],
                           "x-aig-auth": route.auth}
    if route.auth in SCOPES:
        out["x-aig-scope"] = SCOPES[route.auth]
    parameters = [_parameter(p, schemas) for p in route.params]
    parameters += [{"$ref": f"#/components/parameters/{name}"} for name in route.reads]
    if parameters:
        out["parameters"] = parameters
    if route.body is not None:
        out["requestBody"] = _body(route.body, schemas)
    responses: dict[str, Any] = {str(a.status): _answer(a, schemas) for a in route.answers}
    for status in sorted(route.errors):
        responses.setdefault(str(status), {"$ref": f"#/components/responses/Error{status}"})
    out["responses"] = responses
    return out


def _error_responses(schemas: _Schemas) -> dict[str, Any]:
    envelope = schemas.of(ErrorEnvelope)
    out = {}
    for status, description in ERROR_DESCRIPTIONS.items():
        headers = _header_refs(("Retry-After",) if status in _RETRY_AFTER_STATUSES else ())
        out[f"Error{status}"] = {"description": description, "headers": headers,
                                 "content": {"application/json": {"schema": envelope}}}
    return out


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:
        return "0"


def openapi_path(route: Route) -> str:
    """The path as the document spells it (aiohttp's `{name:regex}` as `{name}`)."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)


def with_server(document: dict[str, Any], server_url: str) -> dict[str, Any]:
    """The document as served from `server_url` (the gateway's own origin)."""
    return {**document, "servers": [{"url": server_url, "description": "This gateway"}],
            "x-llms-txt": f"{server_url}/llms.txt"}


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    """The document without `servers` (with_server adds them)."""
    documented = [r for r in routes if r.excluded is None]
    schemas = _Schemas(_types_of(documented))
    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        paths.setdefault(openapi_path(route), {})[route.method.lower()] = _operation(route, schemas)
    excluded = [{"method": r.method, "path": r.aiohttp_path, "reason": r.excluded} for r in routes if r.excluded]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": _version(),
            "summary": "A self-hosted AI gateway: one OpenAI-compatible API in front of every model provider.",
            "description": "OpenAI-compatible endpoints (chat, embeddings, images, audio, video, moderation, "
                           "translation, classification, detection, OCR, rerank), Anthropic's Messages API, and "
                           "the gateway's own primitives: sub-accounts with scoped keys and spend caps, usage by "
                           "tag and by sub-account, async jobs with signed webhooks, files and signed URLs, "
                           "batches, evals and replays. Paths follow the AIgateway contract; point an OpenAI "
                           "SDK's base_url at <server>/v1. Errors are "
                           '{"error": {"message", "type", "code" (the HTTP status), "param"}}.',
            "license": {"name": "See the project's licence"},
        },
        "security": _KEYED,
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "webhooks": webhooks(schemas.of),
        "components": {
            "schemas": schemas.components,
            "responses": _error_responses(schemas),
            "parameters": _header_params(schemas),
            "headers": _sent_headers(schemas),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "sk-aig-...",
                               "description": "Authorization: Bearer <key>: the admin key, a minted key "
                                              "or a sub-account's key."},
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key",
                               "description": "The same key, Anthropic-style."},
            },
        },
        "x-excluded-routes": excluded,
    }
