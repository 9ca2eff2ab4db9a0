"""Google Gemini REST (v1beta): ``generateContent``, ``streamGenerateContent``, ``batchEmbedContents``.

aiohttp cannot route on the ``:method`` suffix of ``/v1beta/models/{model}:{method}``, so one
route ``/v1beta/models/{name}`` takes the whole segment and this module splits it at the last
colon. Deterministic like the OpenAI simulator: the reply is ``Echo: <last user text>``; with
function declarations (and mode not NONE) it is a ``functionCall`` whose args fill the declared
parameters, unless the last turn carries a ``functionResponse``, which is answered
``Tool said: <content>``. usageMetadata counts words. Embeddings are the OpenAI simulator's
vectors for the same text. Streams (``alt=sse``) send one GenerateContentResponse per event,
CRLF-delimited like Google's; without ``alt=sse`` the chunks come as one JSON array.

Auth is ``x-goog-api-key`` or ``?key=`` (any key, or exactly ``SimSettings.api_key`` when set);
as upstream, a missing key is 403 and a wrong one 400 with ErrorInfo reason API_KEY_INVALID.
Errors use Google's envelope ``{"error": {"code", "message", "status"}}``; the fault and latency
directives of ``directives.py`` ride in the model name (``gemini-sim+status=503``). A 429 with a
numeric ``retry_after`` carries it as a ``google.rpc.RetryInfo`` detail, as Google does; any
other ``retry_after`` is sent as a Retry-After header. ``truncate=N`` cuts the text to N pieces as
``maxOutputTokens`` would (finishReason ``MAX_TOKENS``); ``cut_after=N`` streams N chunks and ends
the body cleanly with no ``finishReason``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    SETTINGS_KEY,
    InvalidRequest,
    count_words,
    delay_ms,
    hang_until_disconnect,
    json_response,
    kill_connection,
    malformed_json_response,
    new_id,
    reset_connection,
    split_pieces,
)
from tools.upstream_sim.directives import DirectiveError, Directives, parse_directives
from tools.upstream_sim.openai_embeddings import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embed
from tools.upstream_sim.schema_fill import fill_schema, marked_schema
from tools.upstream_sim.settings import SimSettings

Recorder = Callable[[web.Request, bytes], dict[str, str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Method = Callable[[web.Request, dict[str, Any], str, Directives], Awaitable[web.StreamResponse]]

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
MAX_EMBED_REQUESTS = 100
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
_encode = msgspec.json.encode


def gemini_error(code: int, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> web.Response:
    status = _STATUS_NAMES.get(code) or ("INTERNAL" if code >= 500 else "FAILED_PRECONDITION")
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return json_response({"error": error}, status=code, headers=headers)


def _status_error(code: int, retry_after: str | None) -> web.Response:
    """The error a real Gemini upstream would send for ``code`` (used by the status directive)."""
    details = headers = None
    if retry_after is not None:
        try:
            if code != 429:
                raise ValueError
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{float(retry_after):g}s"}]
        except ValueError:
            headers = {"Retry-After": retry_after}
    if code == 429:
        message = "Resource has been exhausted (e.g. check quota). (simulated)"
    elif code >= 500:
        message = "The model is overloaded. Please try again later. (simulated)" if code == 503 else \
            f"An internal error has occurred. (simulated {code})"
    else:
        message = f"Simulated client error {code}."
    return gemini_error(code, message, details, headers)


def _auth_error(request: web.Request, settings: SimSettings) -> web.Response | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
    if not key:
        return gemini_error(403, "Method doesn't allow unregistered callers (callers without established identity). "
                                 "Please use API Key or other form of API consumer identity to call this API.")
    if settings.api_key is not None and key != settings.api_key:
        return gemini_error(400, "API key not valid. Please pass a valid API key.", [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com"}])
    return None


def gemini_handler(record: Recorder, extra_methods: dict[str, Method] | None = None) -> Handler:
    """The handler for ``POST /v1beta/models/{name}``; ``record`` journals the request (app.py's).
    ``extra_methods`` adds methods served by other modules (Veo's predictLongRunning)."""
    methods = {**_METHODS, **(extra_methods or {})}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        sim_headers = record(request, body)
        settings = request.app[SETTINGS_KEY]
        denied = _auth_error(request, settings)
        if denied is not None:
            return denied
        model, _, method = request.match_info["name"].rpartition(":")
        wire = methods.get(method)
        if not model or wire is None:
            return gemini_error(404, f"Method {method!r} of model {model!r} is not found.")
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return gemini_error(400, "Invalid JSON payload received.")
        if not isinstance(payload, dict):
            return gemini_error(400, "Invalid JSON payload received. The body must be an object.")
        try:
            _, directives = parse_directives(model, sim_headers, settings)
        except DirectiveError as exc:
            return gemini_error(400, str(exc))
        if directives.reset:
            return await reset_connection(request)
        if directives.hang:
            return await hang_until_disconnect(request)
        if directives.status is not None:
            await delay_ms(directives.latency_ms)
            return _status_error(directives.status, directives.retry_after)
        try:
            return await wire(request, payload, model, directives)
        except InvalidRequest as exc:
            return gemini_error(400, exc.message)

    return handle


# --- generateContent --------------------------------------------------------------------------


class Plan(msgspec.Struct):
    text: str | None
    call: dict[str, Any] | None
    finish: str
    prompt_tokens: int
    output_tokens: int


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise InvalidRequest(f"Invalid value at '{where}.parts': expected an array of parts.")
    return parts


def _text(parts: list[dict[str, Any]]) -> str:
    return " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))


def _result_text(response: dict[str, Any]) -> str:
    value = response.get("response")
    content = value.get("content") if isinstance(value, dict) else None
    return content if isinstance(content, str) else _encode(value).decode()


def _lower(schema: Any) -> Any:
    """Gemini's OpenAPI-style schemas may spell types in capitals; fill_schema wants JSON Schema's."""
    if isinstance(schema, list):
        return [_lower(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _lower(v) for k, v in schema.items() if k != "properties"}
    if isinstance(schema.get("type"), str):
        out["type"] = schema["type"].lower()
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _lower(v) for k, v in schema["properties"].items()}
    return out


def _declaration(payload: dict[str, Any]) -> dict[str, Any] | None:
    declarations = [d for tool in payload.get("tools") or [] if isinstance(tool, dict)
                    for d in tool.get("functionDeclarations") or [] if isinstance(d, dict)]
    config = (payload.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if not declarations or config.get("mode") == "NONE":
        return None
    allowed = config.get("allowedFunctionNames")
    for declaration in declarations:
        if not allowed or declaration.get("name") in allowed:
            return declaration
    raise InvalidRequest(f"allowedFunctionNames {allowed!r} names no declared function.")


def _apply_limits(text: str, config: dict[str, Any], truncate: int | None = None) -> tuple[str, str]:
    stops = config.get("stopSequences") or []
    cut = min((i for s in stops if isinstance(s, str) and s and (i := text.find(s)) >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    requested = config.get("maxOutputTokens")
    limit = requested if isinstance(requested, int) and requested > 0 else None
    if truncate is not None:
        limit = truncate if limit is None else min(limit, truncate)
    if limit is not None:
        pieces = split_pieces(text)
        if len(pieces) > limit:
            return "".join(pieces[:limit]), "MAX_TOKENS"
    return text, "STOP"


def plan_content(payload: dict[str, Any], truncate: int | None = None) -> Plan:
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    turns = [(c.get("role") if isinstance(c, dict) else None, _parts(c, f"contents[{i}]"))
             for i, c in enumerate(contents)]
    system = _parts(payload["systemInstruction"], "systemInstruction") if payload.get("systemInstruction") else []
    prompt = count_words(_text(system)) + sum(
        count_words(_text(parts)) + sum(count_words(_result_text(p["functionResponse"]))
                                        for p in parts if isinstance(p.get("functionResponse"), dict))
        for _, parts in turns)
    user_text = next((_text(parts) for role, parts in reversed(turns) if role == "user" and _text(parts)), "")
    result = next((p["functionResponse"] for p in turns[-1][1] if isinstance(p.get("functionResponse"), dict)), None)
    config = payload.get("generationConfig") or {}
    if result is not None:
        text = "Tool said: " + _result_text(result)
    elif (declaration := _declaration(payload)) is not None:
        name = str(declaration.get("name"))
        args = fill_schema(_lower(declaration.get("parameters") or {"type": "object"}), name=name)
        return Plan(None, {"name": name, "args": args}, "STOP", prompt, count_words(_json_text(args)))
    elif config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema")
        schema = _lower(schema) if isinstance(schema, dict) else marked_schema(_text(system))
        text = _json_text(fill_schema(schema) if schema is not None else {"echo": user_text})
    else:
        text = "Echo: " + user_text
    text, finish = _apply_limits(text, config, truncate)
    return Plan(text, None, finish, prompt, count_words(text))


def _json_text(value: Any) -> str:
    return msgspec.json.format(_encode(value), indent=0).decode()


def _candidate_count(payload: dict[str, Any]) -> int:
    n = (payload.get("generationConfig") or {}).get("candidateCount") or 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 8:
        raise InvalidRequest("candidateCount must be between 1 and 8.")
    return n


def _answer(plan: Plan, n: int, model: str, response_id: str, part: dict[str, Any], output_tokens: int,
            finish: str | None) -> dict[str, Any]:
    """One GenerateContentResponse: the whole answer, or one streamed chunk of it."""
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": plan.prompt_tokens, "candidatesTokenCount": output_tokens * n,
             "totalTokenCount": plan.prompt_tokens + output_tokens * n}
    return {"candidates": [{**candidate, "index": k} for k in range(n)], "usageMetadata": usage,
            "modelVersion": model, "responseId": response_id}


def _chunks(plan: Plan, n: int, model: str, finish: bool) -> list[dict[str, Any]]:
    """The answer as streamed chunks (text word by word, a call whole); the last carries finishReason
    and the full usage, unless ``finish`` is false (a stream about to die)."""
    response_id = new_id("")
    if plan.call is not None:
        return [_answer(plan, n, model, response_id, {"functionCall": plan.call}, plan.output_tokens if finish else 0,
                        plan.finish if finish else None)]
    pieces = split_pieces(plan.text or "") or [""]
    return [
        _answer(plan, n, model, response_id, {"text": piece}, min(i + 1, plan.output_tokens),
                plan.finish if finish and i == len(pieces) - 1 else None)
        for i, piece in enumerate(pieces)
    ]


async def _generate(request: web.Request, payload: dict[str, Any], model: str,
                    directives: Directives) -> web.StreamResponse:
    plan = plan_content(payload, directives.truncate)
    n = _candidate_count(payload)
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    part = {"functionCall": plan.call} if plan.call is not None else {"text": plan.text}
    return json_response(_answer(plan, n, model, new_id(""), part, plan.output_tokens, plan.finish))


async def _stream(request: web.Request, payload: dict[str, Any], model: str,
                  directives: Directives) -> web.StreamResponse:
    plan = plan_content(payload, directives.truncate)
    cut = directives.die_after if directives.die_after is not None else directives.cut_after
    chunks = _chunks(plan, _candidate_count(payload), model, finish=cut is None)
    if cut is not None:
        chunks = chunks[:cut]  # die_after then drops the connection; cut_after ends the body cleanly
    if request.query.get("alt") != "sse":
        await delay_ms(directives.latency_ms)
        return json_response(chunks)
    await delay_ms(directives.ttft_ms)
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    if directives.malformed:
        await resp.write(b'data: {"candidates": [{"content": \r\n\r\n')
        return resp
    interval = 1.0 / directives.tps if directives.tps > 0 else 0.0
    buf = bytearray()
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i, chunk in enumerate(chunks):
            if interval:
                wait = start + i * interval - loop.time()
                if wait > 0:
                    if buf:
                        await resp.write(bytes(buf))
                        buf.clear()
                    await asyncio.sleep(wait)
            buf += b"data: " + _encode(chunk) + b"\r\n\r\n"
        if buf:
            await resp.write(bytes(buf))
        if directives.die_after is not None:
            return kill_connection(request, resp)
    except ConnectionError:
        pass  # the client went away mid-stream
    return resp


# --- batchEmbedContents -----------------------------------------------------------------------


async def _embed(request: web.Request, payload: dict[str, Any], model: str,
                 directives: Directives) -> web.StreamResponse:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
        raise InvalidRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > MAX_EMBED_REQUESTS:
        raise InvalidRequest(f"* BatchEmbedContentsRequest.requests: at most {MAX_EMBED_REQUESTS} requests "
                             "can be in one batch")
    vectors = []
    for i, item in enumerate(requests):
        if item.get("model") != f"models/{model}":
            raise InvalidRequest(f"Model names in the requests ({item.get('model')!r}) must match the "
                                 f"batch model 'models/{model}'.")
        dimensions = item.get("outputDimensionality") or DEFAULT_DIMENSIONS
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS:
            raise InvalidRequest(f"requests[{i}].outputDimensionality must be between 1 and {MAX_DIMENSIONS}.")
        text = _text(_parts(item.get("content"), f"requests[{i}].content"))
        vectors.append(embed(b"s:" + text.encode(), dimensions).tolist())
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    return json_response({"embeddings": [{"values": v} for v in vectors]})


_METHODS: dict[str, Method] = {
    "generateContent": _generate,
    "streamGenerateContent": _stream,
    "batchEmbedContents": _embed,
}
