"""OpenAI chat/embeddings bodies -> Gemini REST (v1beta) requests, as pure functions.

Answers come back the other way in gemini_response.py.

Request, OpenAI chat.completions -> Gemini `generateContent`:
  system, developer messages  -> systemInstruction {parts: [{text}]} (all of them, in order)
  user                        -> contents[] {role: "user"}
  assistant                   -> contents[] {role: "model"}; tool_calls -> {functionCall: {name, args}} parts
  tool (and legacy function)  -> {role: "user", parts: [{functionResponse: {name, response: {content}}}]};
                                 name from the earlier assistant tool_call with that id (else the message's
                                 `name`); content is the parsed JSON if the text is a JSON object or array,
                                 else the text
  consecutive same-role turns -> merged into one turn (Gemini alternates user/model, and wants every
                                 answer to one turn's parallel calls in a single user turn)
  content parts: text -> {text}; image_url data: URL -> {inlineData: {mimeType, data}};
                 image_url http(s)/gs URL -> {fileData: {mimeType (from the extension, default image/jpeg),
                 fileUri}}; input_audio -> {inlineData: audio/<format>}; file.file_data -> {inlineData}
  tools[type=function]        -> tools [{functionDeclarations: [{name, description, parameters}]}]
  tool_choice                 -> toolConfig.functionCallingConfig: auto -> AUTO, none -> NONE,
                                 required -> ANY, {function: {name}} -> ANY + allowedFunctionNames
  temperature, top_p, seed, n -> generationConfig temperature, topP, seed, candidateCount
  max_completion_tokens | max_tokens -> maxOutputTokens; stop -> stopSequences;
  presence_penalty, frequency_penalty -> presencePenalty, frequencyPenalty
  response_format json_object -> responseMimeType "application/json"; json_schema -> + responseSchema
  reasoning_effort            -> thinkingConfig.thinkingBudget none 0, minimal/low 1024, medium 8192,
                                 high 24576 (the budgets of Google's own OpenAI-compatible endpoint)
  Not translatable, ignored: logit_bias, logprobs, top_logprobs, parallel_tool_calls, user, metadata,
  store, service_tier, stream_options, prediction, modalities, audio, image_url.detail, message `name`.
  Not translatable, refused (TranslationError -> 400): file_id parts, non-function tools, URL schemes
  other than data/http/https/gs, tool messages whose call cannot be named.

Schemas (tool parameters, json_schema) keep only the fields of Gemini's OpenAPI-subset Schema
(_SCHEMA_KEYS); `$ref` to `#/$defs/..` or `#/definitions/..` is inlined (16 levels deep at most,
so a recursive schema is cut off), `const` becomes a one-value `enum`, `oneOf` becomes `anyOf`,
`type: [t, "null"]` becomes `type: t, nullable: true`, and a string `format` other than
date-time/enum is dropped. Everything else is dropped, notably `additionalProperties`, `$schema`,
`$id`, `$defs`, `definitions`, `strict`, `allOf`, `not`, `patternProperties`, `exclusiveMinimum`,
`exclusiveMaximum`, `multipleOf`, `uniqueItems`, `prefixItems`, `examples`. Gemini rejects an
OBJECT without properties as function parameters, so such `parameters` are left out.

Embeddings: `input` (a string or strings; token ids are refused) -> batchEmbedContents
requests, `dimensions` -> outputDimensionality.
"""

import base64
import mimetypes
import urllib.parse
from typing import Any, Final

import msgspec

_SCHEMA_KEYS: Final = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
    "example", "anyOf", "propertyOrdering", "default", "minimum", "maximum",
})
_STRING_FORMATS: Final = frozenset({"date-time", "enum"})
_MAX_REF_DEPTH: Final = 16
_THINKING_BUDGETS: Final = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_TOOL_MODES: Final = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_AUDIO_TYPES: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}


class TranslationError(ValueError):
    """The body cannot be expressed in the other wire format."""


# --- request: OpenAI -> Gemini ----------------------------------------------------------------


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body for an OpenAI chat.completions body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty array")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise TranslationError(f"{where} must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(message.get("content"), where))
        elif role == "user":
            _append(contents, "user", _parts(message.get("content"), where))
        elif role == "assistant":
            parts = [{"text": text} for text in _texts(message.get("content"), where)]
            for call in message.get("tool_calls") or []:
                name, args = _call(call, where)
                if isinstance(call.get("id"), str):
                    call_names[call["id"]] = name
                parts.append({"functionCall": {"name": name, "args": args}})
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            name = (call_names.get(call_id) if isinstance(call_id, str) else None) or message.get("name")
            if not isinstance(name, str) or not name:
                raise TranslationError(f"{where}: tool_call_id matches no earlier assistant tool call")
            result = _tool_result("".join(_texts(message.get("content"), where)))
            _append(contents, "user", [{"functionResponse": {"name": name, "response": {"content": result}}}])
        else:
            raise TranslationError(f"{where}.role {role!r} is not supported")
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    out.update(_tools(body))
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _texts(content: Any, where: str) -> list[str]:
    """Text of a message that may only hold text (system, assistant, tool)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or an array of parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "refusal"):
            raise TranslationError(f"{where}.content may only hold text parts here, not {kind!r}")
        text = part.get(kind)
        if isinstance(text, str) and text:
            texts.append(text)
    return texts


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in _texts(content, where)]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            parts.extend({"text": text} for text in _texts([part], where))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise TranslationError(f"{where}: image_url needs a url")
            parts.append(_image(url, where))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": _AUDIO_TYPES.get(fmt, f"audio/{fmt}"),
                                         "data": audio.get("data") or ""}})
        elif kind == "file":
            parts.append(_file(part.get("file") or {}, where))
        else:
            raise TranslationError(f"{where}: content part type {kind!r} cannot be sent to Gemini")
    return parts


def _image(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        return {"inlineData": _data_url(url, "image/jpeg", where)}
    try:
        split = urllib.parse.urlsplit(url)
    except ValueError as exc:  # "http://[::1": the client's URL, so a 400, not a router error
        raise TranslationError(f"{where}: image URL is malformed ({exc})") from None
    if split.scheme.lower() not in ("http", "https", "gs"):
        raise TranslationError(f"{where}: image URL scheme {split.scheme!r} is not supported")
    mime = mimetypes.guess_type(split.path)[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _file(file: dict[str, Any], where: str) -> dict[str, Any]:
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise TranslationError(f"{where}: only inline file_data can be sent to Gemini, not file_id")
    if data.startswith("data:"):
        return {"inlineData": _data_url(data, "application/pdf", where)}
    mime = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _data_url(url: str, default_mime: str, where: str) -> dict[str, str]:
    header, comma, data = url[len("data:"):].partition(",")
    if not comma:
        raise TranslationError(f"{where}: malformed data URL")
    params = header.split(";")
    if "base64" not in params[1:]:
        data = base64.b64encode(urllib.parse.unquote_to_bytes(data)).decode()
    return {"mimeType": params[0] or default_mime, "data": data}


def _call(call: Any, where: str) -> tuple[str, dict[str, Any]]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise TranslationError(f"{where}.tool_calls entries need function.name")
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = msgspec.json.decode(args) if args.strip() else {}
        except msgspec.DecodeError:
            raise TranslationError(f"{where}: tool call arguments are not JSON") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise TranslationError(f"{where}: tool call arguments must be a JSON object")
    return fn["name"], args


def _tool_result(text: str) -> Any:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, dict | list) else text


def _tools(body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools")
    if not tools:
        return {}
    if not isinstance(tools, list):
        raise TranslationError("'tools' must be an array")
    declarations = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TranslationError("only function tools with a name can be sent to Gemini")
        declaration: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            declaration["description"] = fn["description"]
        parameters = clean_schema(fn["parameters"]) if isinstance(fn.get("parameters"), dict) else {}
        if parameters.get("properties") or parameters.get("type", "object") != "object":
            declaration["parameters"] = parameters
        declarations.append(declaration)
    out: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice in _TOOL_MODES:
        out["toolConfig"] = {"functionCallingConfig": {"mode": _TOOL_MODES[choice]}}
    elif isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if not isinstance(name, str):
            raise TranslationError("'tool_choice' must name a function")
        out["toolConfig"] = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    elif choice is not None:
        raise TranslationError(f"'tool_choice' {choice!r} cannot be sent to Gemini")
    return out


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("n", "candidateCount"),
                         ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema") if kind == "json_schema" else None
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            config["responseSchema"] = clean_schema(spec["schema"])
    elif fmt is not None and kind != "text":
        raise TranslationError(f"'response_format' type {kind!r} cannot be sent to Gemini")
    effort = body.get("reasoning_effort")
    if effort in _THINKING_BUDGETS:
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config


def clean_schema(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON schema reduced to what Gemini's Schema object accepts (see the module docstring)."""
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if depth >= _MAX_REF_DEPTH:
            return {}
        return clean_schema(_resolve(root, ref), root, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub, root, depth) for name, sub in value.items() if isinstance(sub, dict)}
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["anyOf"] = [clean_schema(sub, root, depth) for sub in value if isinstance(sub, dict)]
        elif key == "items" and isinstance(value, dict):
            out[key] = clean_schema(value, root, depth)
        elif key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            out["type"] = kinds[0] if kinds else "null"
            if "null" in value and kinds:
                out["nullable"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key in _SCHEMA_KEYS and key not in out:
            out[key] = value
    if out.get("type") == "string" and out.get("format") not in _STRING_FORMATS:
        out.pop("format", None)
    return out


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#").split("/"):
        if part:
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


# --- embeddings --------------------------------------------------------------------------------


def embeddings_request(body: dict[str, Any], model_path: str) -> tuple[dict[str, Any], str]:
    """The batchEmbedContents body and the encoding format the client asked for."""
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        texts = raw
    elif isinstance(raw, list) and raw and all(isinstance(item, int | list) for item in raw):
        raise TranslationError("Gemini embeds text only: token-id 'input' is not supported")
    else:
        raise TranslationError("'input' must be a non-empty string or array of strings")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise TranslationError("'encoding_format' must be 'float' or 'base64'")
    dimensions = body.get("dimensions")
    requests = []
    for text in texts:
        request: dict[str, Any] = {"model": model_path, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}, fmt
