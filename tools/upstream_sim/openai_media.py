"""OpenAI images, audio and moderation APIs: deterministic, tiny answers.

  POST /v1/images/generations   a 1x1 PNG per image, as b64_json (default) or a URL
  POST /v1/images/edits         multipart (image, prompt): the same
  POST /v1/audio/speech         a few bytes of deterministic "audio" (audio/mpeg for mp3)
  POST /v1/audio/transcriptions multipart (file): {"text": "Transcript of <filename> (<n> bytes)"}
  POST /v1/audio/translations   the same, without usage
  POST /v1/moderations          flags an input containing "kill" (violence)

The journal records JSON bodies as they are; for a multipart form it records
{"form_fields": [names], "model": value} instead of the bytes. Fault directives
ride in the model name as everywhere else (``image-sim+status=503``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    SETTINGS_KEY,
    InvalidRequest,
    delay_ms,
    hang_until_disconnect,
    json_response,
    malformed_json_response,
    new_id,
    openai_error,
    openai_status_error,
    reset_connection,
)
from tools.upstream_sim.directives import DirectiveError, Directives, parse_directives

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JsonHandler = Callable[[web.Request, dict[str, Any], Directives], Awaitable[web.StreamResponse]]
Dispatch = Callable[[web.Request, JsonHandler], Awaitable[web.StreamResponse]]
Recorder = Callable[[web.Request, bytes], dict[str, str]]
AuthCheck = Callable[[web.Request, Any], "web.Response | None"]
FormHandler = Callable[[dict[str, Any], Directives], web.StreamResponse]

GPT_IMAGE_OUTPUT_TOKENS = 1056  # OpenAI's count for one 1024x1024 medium-quality image
GPT_IMAGE_INPUT_TOKENS = 323  # per input image of an edit
BYTES_PER_SECOND = 16_000  # how much "audio" the transcription usage counts as one second
_AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}
_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
               "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
               "violence/graphic")


def _tiny_png() -> bytes:
    """A valid 1x1 RGB PNG, byte for byte the same every time."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x30\x60\x90", 9))
            + chunk(b"IEND", b""))


PNG = _tiny_png()
PNG_B64 = base64.b64encode(PNG).decode()


def _count(payload: dict[str, Any]) -> int:
    n = payload.get("n", 1)
    n = 1 if n is None else int(n) if isinstance(n, str) and n.isdigit() else n  # form fields are strings
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        raise InvalidRequest("Invalid 'n': expected an integer between 1 and 10.", "n")
    return n


def _images(payload: dict[str, Any], prompt: str, image_tokens: int = 0) -> web.Response:
    fmt = payload.get("response_format") or "b64_json"
    if fmt not in ("url", "b64_json"):
        raise InvalidRequest("Invalid 'response_format': expected 'url' or 'b64_json'.", "response_format")
    key = hashlib.blake2b(prompt.encode(), digest_size=8).hexdigest()
    image = {"b64_json": PNG_B64} if fmt == "b64_json" else {"url": f"https://upstream-sim.invalid/{key}.png"}
    data = [{**image, "revised_prompt": prompt} for _ in range(_count(payload))]
    body: dict[str, Any] = {"created": int(time.time()), "data": data}
    if str(payload.get("model", "")).startswith("gpt-image"):
        # gpt-image-* bill in tokens, and say how many: the prompt's words, plus each input
        # image, in; GPT_IMAGE_OUTPUT_TOKENS per image generated, out.
        text_tokens = len(prompt.split())
        output_tokens = GPT_IMAGE_OUTPUT_TOKENS * len(data)
        body["usage"] = {"input_tokens": text_tokens + image_tokens, "output_tokens": output_tokens,
                         "total_tokens": text_tokens + image_tokens + output_tokens,
                         "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens}}
    return json_response(body)


def _prompt(payload: dict[str, Any]) -> str:
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    return prompt


async def handle_image_generation(request: web.Request, payload: dict[str, Any],
                                  directives: Directives) -> web.StreamResponse:
    prompt = _prompt(payload)
    await delay_ms(directives.latency_ms)
    return malformed_json_response() if directives.malformed else _images(payload, prompt)


async def handle_speech(request: web.Request, payload: dict[str, Any], directives: Directives) -> web.StreamResponse:
    text = payload.get("input")
    if not isinstance(text, str) or not text:
        raise InvalidRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    fmt = payload.get("response_format") or "mp3"
    if fmt not in _AUDIO_TYPES:
        raise InvalidRequest(f"Invalid 'response_format': {fmt!r}.", "response_format")
    await delay_ms(directives.latency_ms)
    digest = hashlib.sha256(f"{payload['model']}\0{payload.get('voice')}\0{text}".encode()).digest()
    audio = (b"ID3\x04\x00\x00\x00\x00\x00\x00" if fmt == "mp3" else b"SIMAUDIO") + digest
    return web.Response(body=audio, headers={"Content-Type": _AUDIO_TYPES[fmt]})


def _input_texts(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        texts = [item if isinstance(item, str) else item.get("text") or "" if isinstance(item, dict) else None
                 for item in raw]
        if all(isinstance(t, str) for t in texts):
            return texts  # type: ignore[return-value]
    raise InvalidRequest("Invalid 'input': expected a string or an array of strings.", "input")


async def handle_moderation(request: web.Request, payload: dict[str, Any],
                            directives: Directives) -> web.StreamResponse:
    texts = _input_texts(payload.get("input"))
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    results = []
    for text in texts:
        flagged = "kill" in text.lower()
        results.append({
            "flagged": flagged,
            "categories": {c: flagged and c == "violence" for c in _CATEGORIES},
            "category_scores": {c: 0.91 if flagged and c == "violence" else 0.0001 for c in _CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in _CATEGORIES},
        })
    return json_response({"id": new_id("modr-"), "model": payload["model"], "results": results})


def _transcript(form: dict[str, Any], translate: bool) -> web.Response:
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        raise InvalidRequest("Missing required parameter: 'file'.", "file", "missing_required_parameter")
    size = len(upload.file.read())
    text = f"Transcript of {upload.filename} ({size} bytes)"
    seconds = max(1, math.ceil(size / BYTES_PER_SECOND))
    fmt = form.get("response_format") or "json"
    if fmt == "text":
        return web.Response(text=text, content_type="text/plain")
    if fmt == "srt":
        return web.Response(text=f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n", content_type="text/plain")
    if fmt == "vtt":
        return web.Response(text=f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n", content_type="text/vtt")
    if fmt == "verbose_json":
        return json_response({"task": "translate" if translate else "transcribe", "language": "english",
                              "duration": float(seconds), "text": text, "segments": []})
    if fmt != "json":
        raise InvalidRequest(f"Invalid 'response_format': {fmt!r}.", "response_format")
    body: dict[str, Any] = {"text": text}
    if not translate:
        body["usage"] = {"type": "duration", "seconds": seconds}
    return json_response(body)


def _image_edit(form: dict[str, Any]) -> web.Response:
    images = [v for k, v in form.items() if k in ("image", "image[]") and isinstance(v, web.FileField)]
    if not images:
        raise InvalidRequest("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    return _images(form, f"Edited {images[0].filename}: {_prompt(form)}", GPT_IMAGE_INPUT_TOKENS * len(images))


async def _form_dispatch(request: web.Request, record: Recorder, auth_error: AuthCheck,
                         handler: FormHandler) -> web.StreamResponse:
    try:
        posted = await request.post()
    except (ValueError, AssertionError):
        record(request, b"")
        return openai_error(400, "Could not parse multipart form.", "invalid_request_error")
    form: dict[str, Any] = {}
    for key, value in posted.items():  # the first value of each field, like OpenAI
        form.setdefault(key, value)
    model = form.get("model")
    sim_headers = record(request, msgspec.json.encode({"form_fields": list(posted.keys()),
                                                       "model": model if isinstance(model, str) else None}))
    settings = request.app[SETTINGS_KEY]
    denied = auth_error(request, settings)
    if denied is not None:
        return denied
    if not isinstance(model, str) or not model:
        return openai_error(400, "You must provide a model parameter.", "invalid_request_error", param="model",
                            code="missing_required_parameter")
    try:
        _, directives = parse_directives(model, sim_headers, settings)
    except DirectiveError as exc:
        return openai_error(400, str(exc), "invalid_request_error", param="model")
    if directives.reset:
        return await reset_connection(request)
    if directives.hang:
        return await hang_until_disconnect(request)
    await delay_ms(directives.latency_ms)
    if directives.status is not None:
        return openai_status_error(directives.status, directives.retry_after)
    if directives.malformed:
        return malformed_json_response()
    try:
        return handler(form, directives)
    except InvalidRequest as exc:
        return openai_error(400, exc.message, "invalid_request_error", param=exc.param, code=exc.code)


def media_routes(record: Recorder, auth_error: AuthCheck, dispatch: Dispatch) -> list[tuple[str, Handler]]:
    """(path, handler) for every media endpoint; app.py registers them."""

    def json_route(handler: JsonHandler) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            return await dispatch(request, handler)
        return route

    def form_route(handler: FormHandler) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            return await _form_dispatch(request, record, auth_error, handler)
        return route

    return [
        ("/v1/images/generations", json_route(handle_image_generation)),
        ("/v1/images/edits", form_route(lambda form, _: _image_edit(form))),
        ("/v1/audio/speech", json_route(handle_speech)),
        ("/v1/audio/transcriptions", form_route(lambda form, _: _transcript(form, translate=False))),
        ("/v1/audio/translations", form_route(lambda form, _: _transcript(form, translate=True))),
        ("/v1/moderations", json_route(handle_moderation)),
    ]
