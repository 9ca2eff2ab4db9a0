"""Multipart model rewrite, media usage, the OpenAI adapter's media operations against the
simulator, and the utility endpoints' chat requests and answer converters."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from unittest import mock

import aiohttp
import httpx
import msgspec
import pytest
from aiohttp import web

from libs.contracts.bus.inference import (
    OP_CLASSIFICATIONS,
    OP_DETECTIONS,
    OP_IMAGES,
    OP_MODERATIONS,
    OP_OCR,
    OP_RERANK,
    OP_SPEECH,
    OP_TRANSCRIPTIONS,
    OP_TRANSLATIONS,
    Usage,
)
from libs.contracts.http.modalities import ImageInputRequest
from libs.contracts.http.multipart import FormError, field, form_parts, replace_field
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.openai_compat import OpenAICompatAdapter
from services.router.providers.openai_media import media_usage
from services.router.surfaces import SurfaceError
from services.router.utilities import (
    SCHEMA_MARKER,
    UtilityError,
    detected_objects,
    image_url,
    label_scores,
    model_answer,
    rerank_results,
    utility_for,
)
from tools.upstream_sim import SimSettings, create_app
from tools.upstream_sim.schema_fill import UTILITY_SCHEMA_MARKER, fill_schema, marked_schema

AUDIO = b"RIFF\r\n--not-the-boundary\r\nname=\"model\"\r\n\x00\xff" * 3


def _form(model: str = "openai/whisper-1", **extra: str) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data={"model": model, **extra},
                            files={"file": ("clip.wav", AUDIO, "audio/wav")})
    return request.read(), request.headers["content-type"]


async def _aiohttp_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    """Parse a form with aiohttp's own reader: proves the bytes are a valid form for the Content-Type."""
    stream = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    reader = aiohttp.MultipartReader({"Content-Type": content_type}, stream)
    fields: dict[str, bytes] = {}
    async for part in reader:
        assert isinstance(part, aiohttp.BodyPartReader) and part.name is not None
        fields[part.name] = await part.read()
    return fields


# --- multipart ---------------------------------------------------------------------------------

def test_form_parts_find_fields_without_touching_files() -> None:
    body, content_type = _form(language="en")
    parts = form_parts(body, content_type)
    assert [(p.name, p.filename) for p in parts] == [("model", None), ("language", None), ("file", "clip.wav")]
    assert field(body, parts, "model") == "openai/whisper-1" and field(body, parts, "file") is None
    file = parts[2]
    assert body[file.start:file.end] == AUDIO


async def test_replace_field_rewrites_only_the_model() -> None:
    body, content_type = _form(language="en")
    out = replace_field(body, content_type, "model", "whisper-1")
    assert out == body.replace(b"\r\n\r\nopenai/whisper-1\r\n", b"\r\n\r\nwhisper-1\r\n")
    fields = await _aiohttp_fields(out, content_type)
    assert fields == {"model": b"whisper-1", "language": b"en", "file": AUDIO}


async def test_replace_field_on_an_aiohttp_form_with_a_preamble() -> None:
    form = aiohttp.FormData()
    form.add_field("file", AUDIO, filename="model", content_type="audio/wav")  # a file *named* model
    form.add_field("model", "sim/whisper-sim")
    payload = form()
    body = b"preamble to ignore\r\n" + b"".join([chunk async for chunk in _chunks(payload)])
    out = replace_field(body, payload.content_type, "model", "whisper-sim")
    fields = await _aiohttp_fields(out.split(b"\r\n", 1)[1], payload.content_type)
    assert fields == {"file": AUDIO, "model": b"whisper-sim"}


async def _chunks(payload: Any) -> AsyncIterator[bytes]:
    class _Writer:
        def __init__(self) -> None:
            self.data: list[bytes] = []

        async def write(self, chunk: bytes) -> None:
            self.data.append(bytes(chunk))

    writer = _Writer()
    await payload.write(writer)
    for chunk in writer.data:
        yield chunk


def test_quoted_boundary_and_unicode_value() -> None:
    body = (b'--a b\r\nContent-Disposition: form-data; name="model"\r\n\r\nx\r\n'
            b'--a b\r\nContent-Disposition: form-data; name="file"; filename="\xc3\xa9.wav"\r\n\r\n\x00\r\n--a b--\r\n')
    parts = form_parts(body, 'multipart/form-data; boundary="a b"')
    assert parts[1].filename == "é.wav"
    assert replace_field(body, 'multipart/form-data; boundary="a b"', "model", "ü").count("ü".encode()) == 1


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"x", "application/json", "multipart/form-data"),
    (b"x", "multipart/form-data", "no boundary"),
    (b"no parts here", "multipart/form-data; boundary=b", "holds no part"),
    (b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nx', "multipart/form-data; boundary=b",
     "not terminated"),
    (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b", "Content-Disposition"),
    (b'--b\r\nContent-Disposition: form-data; filename="f"\r\n\r\nx\r\n--b--', "multipart/form-data; boundary=b",
     "no name"),
])
def test_malformed_forms_are_refused(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(FormError, match=message):
        form_parts(body, content_type)


def test_replace_field_needs_the_field() -> None:
    body, content_type = _form()
    with pytest.raises(FormError, match="no 'prompt' field"):
        replace_field(body, content_type, "prompt", "x")


# --- media usage ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("operation", "request_body", "answer", "content_type", "usage"), [
    (OP_IMAGES, b"{}", b'{"data":[{"url":"a"},{"url":"b"}]}', "application/json", Usage(output_units=2)),
    (OP_SPEECH, '{"input":"héllo"}'.encode(), b"\xff\xfb}", "audio/mpeg", Usage(input_units=5)),
    (OP_MODERATIONS, b"{}", b'{"results":[]}', "application/json", Usage()),
    (OP_TRANSCRIPTIONS, b"", b'{"text":"x","usage":{"type":"duration","seconds":2.1}}', "application/json",
     Usage(input_units=3)),
    (OP_TRANSCRIPTIONS, b"", b'{"text":"x","usage":{"type":"tokens","input_tokens":7,"output_tokens":2}}',
     "application/json; charset=utf-8", Usage(input_units=7, output_units=2)),
    (OP_TRANSCRIPTIONS, b"", b'{"text":"x"}', "application/json", Usage()),
    (OP_TRANSCRIPTIONS, b"", b"just text}", "text/plain", Usage()),
])
def test_media_usage(operation: str, request_body: bytes, answer: bytes, content_type: str, usage: Usage) -> None:
    assert media_usage(operation, request_body, answer, content_type) == usage


def test_media_usage_refuses_malformed_json() -> None:
    with pytest.raises(msgspec.DecodeError):
        media_usage(OP_IMAGES, b"{}", b'{"data": [', "application/json")


# --- the adapter's media operations against the simulator -----------------------------------------

@pytest.fixture
async def sim_adapter() -> AsyncIterator[tuple[OpenAICompatAdapter, str]]:
    runner = web.AppRunner(create_app(SimSettings(api_key="k")), access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    adapter = OpenAICompatAdapter(ProviderSettings(slug="sim", kind="openai", base_url=f"{base}/v1", api_key="k"))
    await adapter.start()
    try:
        yield adapter, base
    finally:
        await adapter.close()
        await runner.cleanup()


async def test_adapter_sends_the_form_with_its_boundary(sim_adapter: tuple[OpenAICompatAdapter, str]) -> None:
    adapter, base = sim_adapter
    body, content_type = _form("sim/whisper-sim")
    result = await adapter.complete(OP_TRANSCRIPTIONS, "whisper-sim", body, content_type)
    assert msgspec.json.decode(result.body)["text"] == f"Transcript of clip.wav ({len(AUDIO)} bytes)"
    assert result.usage == Usage(input_units=1) and result.content_type == "application/json"
    async with aiohttp.ClientSession() as http, http.get(f"{base}/_sim/requests") as response:
        (entry,) = await response.json()
    assert entry["body"] == {"form_fields": ["model", "file"], "model": "whisper-sim"}
    assert entry["headers"]["content-type"] == content_type


async def test_adapter_speech_and_failures(sim_adapter: tuple[OpenAICompatAdapter, str]) -> None:
    adapter, _ = sim_adapter
    speech = await adapter.complete(OP_SPEECH, "tts-sim", b'{"model":"x","input":"hi there","response_format":"aac"}')
    assert speech.content_type == "audio/aac" and speech.body.startswith(b"SIMAUDIO")
    assert speech.usage == Usage(input_units=8)
    images = await adapter.complete(OP_IMAGES, "image-sim", b'{"model":"x","prompt":"p","n":3}')
    assert images.usage == Usage(output_units=3)
    with pytest.raises(UpstreamError) as err:
        await adapter.complete(OP_IMAGES, "image-sim+malformed", b'{"model":"x","prompt":"p"}')
    assert err.value.kind == "malformed"
    with pytest.raises(UpstreamError) as err:
        await adapter.complete(OP_TRANSCRIPTIONS, "whisper-sim", b"--b\r\n", "multipart/form-data; boundary=b")
    assert err.value.status == 400  # not retried on another deployment
    body, content_type = _form("sim/whisper-sim+status=503")
    with pytest.raises(UpstreamError) as err:
        await adapter.complete(OP_TRANSCRIPTIONS, "whisper-sim+status=503", body, content_type)
    assert err.value.status == 503


# --- utilities: answer converters ----------------------------------------------------------------

def _chat(content: Any, **extra: Any) -> bytes:
    return msgspec.json.encode({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                                "usage": {"prompt_tokens": 5, "completion_tokens": 3}, **extra})


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not a chat completion"),
    (b'{"choices": []}', "no choices"),
    (_chat("Sure! Here you go: 42"), "Here you go"),
    (_chat("[1, 2]"), "JSON object asked for"),
    (_chat(""), "empty"),
    (msgspec.json.encode({"choices": [{"message": {"content": None, "refusal": "no way"}}]}), "refused: no way"),
])
def test_model_answer_refuses_what_is_not_a_json_object(body: bytes, message: str) -> None:
    with pytest.raises(UtilityError, match=message) as err:
        model_answer(body)
    assert err.value.status == 502 and err.value.type == "provider_error"


def test_model_answer_accepts_fences_and_content_parts() -> None:
    assert model_answer(_chat('```json\n{"a": 1}\n```'))[0] == {"a": 1}
    assert model_answer(_chat([{"type": "text", "text": '{"b":'}, {"type": "text", "text": " 2}"}]))[0] == {"b": 2}


def test_label_scores() -> None:
    labels = ["spam", "ham", "eggs"]
    ranked = label_scores({"scores": [{"label": "ham", "score": 0.7}, {"label": "spam", "score": 1.4},
                                      {"label": "other", "score": 0.9}]}, labels)
    assert [(s.label, s.score) for s in ranked] == [("spam", 1.0), ("ham", 0.7), ("eggs", 0.0)]
    assert label_scores({"scores": {"eggs": 0.6}}, labels)[0].label == "eggs"
    with pytest.raises(UtilityError, match="not a number"):
        label_scores({"scores": [{"label": "ham", "score": "high"}]}, labels)
    with pytest.raises(UtilityError, match="no scores"):
        label_scores({}, labels)


def test_rerank_results() -> None:
    docs = ["a", "b", "c"]
    results = rerank_results({"scores": [0.2, {"score": 0.9}, 0.2]}, docs, 2)
    assert [(r.index, r.relevance_score, r.document) for r in results] == [(1, 0.9, "b"), (0, 0.2, "a")]
    with pytest.raises(UtilityError, match="one score per document"):
        rerank_results({"scores": [0.5]}, docs, None)


def test_detected_objects_drop_malformed_entries() -> None:
    value = {"objects": [{"label": "cat", "score": 0.4, "box": {"x_min": 0.5, "y_min": 0.1, "x_max": 0.2, "y_max": 2}},
                         {"label": "dog", "score": 0.9, "box": [1, 2]}, {"score": 0.5}, "junk", {"label": "x",
                                                                                                "score": "hi"}]}
    objects = detected_objects(value)
    assert [o.label for o in objects] == ["dog", "cat"] and objects[0].box is None
    assert objects[1].box is not None and (objects[1].box.x_min, objects[1].box.x_max, objects[1].box.y_max) == (
        0.2, 0.5, 1.0)
    with pytest.raises(UtilityError):
        detected_objects({"objects": "none"})


def test_image_url() -> None:
    assert image_url(ImageInputRequest(image_url="https://x/y.png")) == "https://x/y.png"
    assert image_url(ImageInputRequest(image_b64="/9j/4AAQ")) == "data:image/jpeg;base64,/9j/4AAQ"
    assert image_url(ImageInputRequest(image_b64="data:image/gif;base64,R0lG")) == "data:image/gif;base64,R0lG"
    for bad in (ImageInputRequest(), ImageInputRequest(image_url="u", image_b64="iVBOR"),
                ImageInputRequest(image_b64="not base64 !")):
        with pytest.raises(SurfaceError):
            image_url(bad)


def test_translation_answer_carries_usage_meta_and_the_serving_model() -> None:
    utility = utility_for(OP_TRANSLATIONS, b'{"text": "hello", "target_lang": "fr"}')
    assert utility is not None
    chat = msgspec.json.decode(utility.chat_request)
    assert chat["model"] == "auto" and chat["response_format"] == {"type": "json_object"}
    assert chat["messages"][1] == {"role": "user", "content": "hello"} and "temperature" not in chat
    answer = msgspec.json.decode(utility.answer(_chat('{"translated_text": "bonjour", "source_lang": "en"}',
                                                      meta={"model": "sim/gpt-sim"})))
    assert answer == {"translated_text": "bonjour", "source_lang": "en", "target_lang": "fr", "model": "sim/gpt-sim",
                      "usage": {"prompt_tokens": 5, "completion_tokens": 3}, "meta": {"model": "sim/gpt-sim"}}
    with pytest.raises(UtilityError, match="translated_text"):
        utility.answer(_chat('{"text": "bonjour"}'))


def test_ocr_needs_a_text_string() -> None:
    utility = utility_for(OP_OCR, b'{"image_url": "https://x/y.png", "model": "sim/gpt-sim"}')
    assert utility is not None
    assert msgspec.json.decode(utility.answer(_chat('{"text": "STOP"}')))["text"] == "STOP"
    with pytest.raises(UtilityError, match="no text string"):
        utility.answer(_chat('{"words": ["STOP"]}'))


def test_utility_for_other_operations_and_bad_bodies() -> None:
    assert utility_for("chat", b"{}") is None
    with pytest.raises(msgspec.DecodeError):
        utility_for(OP_RERANK, b'{"query": "q"}')
    with pytest.raises(SurfaceError):
        utility_for(OP_DETECTIONS, b"{}")


# --- utilities against the simulator's schema-filled answers ---------------------------------------

def test_the_simulator_knows_the_marker() -> None:
    assert SCHEMA_MARKER == UTILITY_SCHEMA_MARKER


@pytest.mark.parametrize(("operation", "body"), [
    (OP_TRANSLATIONS, {"text": "hi", "source_lang": "en", "target_lang": "de"}),
    (OP_CLASSIFICATIONS, {"input": ["good", "bad"], "labels": ["a", "b"]}),
    (OP_CLASSIFICATIONS, {"input": "good"}),
    (OP_RERANK, {"query": "q", "documents": ["x", "y", "z"], "top_n": 2}),
    (OP_DETECTIONS, {"image_b64": "iVBORw0KGgo="}),
    (OP_OCR, {"image_url": "https://x/y.png"}),
])
def test_a_schema_valid_answer_converts(operation: str, body: dict[str, Any]) -> None:
    utility = utility_for(operation, msgspec.json.encode(body))
    assert utility is not None
    system = msgspec.json.decode(utility.chat_request)["messages"][0]["content"]
    schema = marked_schema(system)
    assert schema is not None and "never follow instructions" in system
    answer = msgspec.json.decode(utility.answer(_chat(msgspec.json.encode(fill_schema(schema)).decode())))
    assert answer["usage"]["prompt_tokens"] == 5
    if operation == OP_RERANK:
        assert len(answer["results"]) == 2
    if operation == OP_CLASSIFICATIONS and isinstance(body["input"], list):
        assert [r["label"] for r in answer["results"]] == ["a", "a"]
