"""Embeddings, models, moderations, images and audio, as the gateway sends them, against OpenAI's
published schemas, through each path that reaches them: an OpenAI-compatible upstream passed
through, translated from Gemini (embeddings), and replayed from the response cache (embeddings
are cached by default; the others with `x-cache: force`)."""

import base64
import secrets
import struct
from typing import Any

import httpx
import pytest

from tests.conformance.openai_schemas import OpenAISchemas
from tests.integration.api import call
from tests.integration.cluster import UPSTREAM_KEY, Cluster
from tools.upstream_sim.openai_media import PNG

FORCE = {"x-cache": "force"}
# A form is cached by its bytes, boundary included: a fixed boundary lets a form be sent twice alike.
FORM = {"Content-Type": "multipart/form-data; boundary=conformance-form"}
# (model, served from the cache)
EMBEDDINGS = [pytest.param("sim/embed-sim", False, id="openai-compatible"),
              pytest.param("google/text-embedding-004", False, id="from-gemini"),
              pytest.param("sim/embed-sim", True, id="cached-openai-compatible"),
              pytest.param("google/text-embedding-004", True, id="cached-from-gemini")]
CACHED = [pytest.param(False, id="upstream"), pytest.param(True, id="cached")]
# Every format from the provider; a couple replayed from the cache (its content type is stored too).
SPEECH = [*(pytest.param(fmt, False, id=fmt) for fmt in ("mp3", "opus", "aac", "flac", "wav", "pcm")),
          pytest.param("mp3", True, id="cached-mp3"), pytest.param("flac", True, id="cached-flac")]


def _ok(gateway: Cluster, path: str, cached: bool = False, **kwargs: Any) -> httpx.Response:
    """POST (twice when `cached`: the second is the cache hit) and return the last answer."""
    headers = {"Authorization": f"Bearer {gateway.admin_key}", **(FORCE if cached else {}),
               **(FORM if "files" in kwargs else {})}
    if cached:
        httpx.post(f"{gateway.base_url}{path}", headers=headers, timeout=20, **kwargs)
    response = httpx.post(f"{gateway.base_url}{path}", headers=headers, timeout=20, **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers.get("X-Cache-Status", "").startswith("hit") == cached, response.headers
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert "meta" in body  # our extension, where the schema allows more
    return body


def _unique(text: str) -> str:
    return f"{text} {secrets.token_hex(4)}"


# Embeddings -------------------------------------------------------------------------------------

def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) % 4 == 0, "a base64 embedding is packed little-endian float32"
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize(("model", "cached"), EMBEDDINGS)
def test_embeddings_float_and_base64(gateway: Cluster, openai_schemas: OpenAISchemas, model: str,
                                     cached: bool) -> None:
    words = [_unique("alpha"), _unique("beta gamma")]
    as_float = _json(_ok(gateway, "/embeddings", cached, json={"model": model, "input": words,
                                                               "encoding_format": "float"}))
    openai_schemas.check("CreateEmbeddingResponse", as_float)
    assert [d["index"] for d in as_float["data"]] == [0, 1]
    as_b64 = _json(_ok(gateway, "/embeddings", cached, json={"model": model, "input": words,
                                                             "encoding_format": "base64"}))
    # The document describes only the float form; OpenAI's API (and so every SDK) sends
    # `encoding_format: base64` vectors as a base64 string of float32s (docs/conformance.md).
    # That one field is decoded, then the whole body is held to the schema.
    decoded = {**as_b64, "data": [{**item, "embedding": _floats(item["embedding"])} for item in as_b64["data"]]}
    openai_schemas.check("CreateEmbeddingResponse", decoded)
    for got, want in zip(decoded["data"], as_float["data"], strict=True):
        assert got["embedding"] == pytest.approx(want["embedding"], rel=1e-6)


# Models -----------------------------------------------------------------------------------------

def test_model_list_and_each_provider_s_model(gateway: Cluster, openai_schemas: OpenAISchemas) -> None:
    listed = call(gateway, "GET", "/models")
    assert listed.status_code == 200
    openai_schemas.check("ListModelsResponse", listed.json())
    for model in ("sim/gpt-sim", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash", "openai/whisper-1",
                  "openai/brand-new-model"):  # the last: not in the catalog, passed through unpriced
        one = call(gateway, "GET", f"/models/{model}")
        assert one.status_code == 200, one.text
        openai_schemas.check("Model", one.json())
        assert one.json()["id"] == model


# Moderations and images -------------------------------------------------------------------------

@pytest.mark.parametrize("cached", CACHED)
@pytest.mark.parametrize("model", [None, "sim/moderation-sim", "openai/omni-moderation-latest"])
def test_moderations(gateway: Cluster, openai_schemas: OpenAISchemas, model: str | None, cached: bool) -> None:
    body: dict[str, Any] = {"input": [_unique("I will kill the process"), "hello"]}
    if model is not None:
        body["model"] = model
    answer = _json(_ok(gateway, "/moderations", cached, json=body))
    openai_schemas.check("CreateModerationResponse", answer)
    assert [r["flagged"] for r in answer["results"]] == [True, False]


@pytest.mark.parametrize("cached", CACHED)
@pytest.mark.parametrize(("model", "extra"), [
    pytest.param("sim/image-sim", {"response_format": "b64_json", "n": 2, "size": "256x256"}, id="b64"),
    pytest.param("openai/dall-e-3", {"response_format": "url"}, id="url"),
    pytest.param("openai/gpt-image-1", {}, id="token-billed"),
])
def test_image_generations(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, extra: dict[str, Any],
                           cached: bool) -> None:
    answer = _json(_ok(gateway, "/images/generations", cached, json={"model": model, "prompt": _unique("a cat"),
                                                                     **extra}))
    openai_schemas.check("ImagesResponse", answer)
    assert len(answer["data"]) == extra.get("n", 1)


@pytest.mark.parametrize("cached", CACHED)
def test_image_edits(gateway: Cluster, openai_schemas: OpenAISchemas, cached: bool) -> None:
    answer = _json(_ok(gateway, "/images/edits", cached, files={"image": ("in.png", PNG, "image/png")},
                       data={"model": "sim/image-sim", "prompt": _unique("make it blue")}))
    openai_schemas.check("ImagesResponse", answer)


# Audio ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "cached"), SPEECH)
def test_speech_is_the_provider_s_audio_with_its_content_type(gateway: Cluster, fmt: str, cached: bool) -> None:
    # OpenAI's document: `application/octet-stream`, binary; its API names the audio type
    # (audio/mpeg for mp3, ...). Either way the body is bytes, not JSON, and the provider's type.
    body = {"model": "sim/tts-sim", "voice": "alloy", "input": _unique("hello"), "response_format": fmt}
    answer = _ok(gateway, "/audio/speech", cached, json=body)
    direct = httpx.post(f"{gateway.sim_url}/v1/audio/speech", json={**body, "model": "tts-sim"},
                        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}, timeout=20)
    content_type = answer.headers["content-type"]
    assert content_type == direct.headers["content-type"]
    assert content_type.startswith("audio/") or content_type == "application/octet-stream"
    assert answer.content == direct.content and answer.headers["X-Model"] == "sim/tts-sim"


def _audio_form(model: str, fmt: str | None, **fields: Any) -> dict[str, Any]:
    data = {"model": model, **fields}
    if fmt is not None:
        data["response_format"] = fmt
    return {"files": {"file": ("clip.wav", b"\x00" * 20_000 + secrets.token_bytes(8), "audio/wav")}, "data": data}


TRANSCRIPTIONS = [pytest.param(None, "CreateTranscriptionResponseJson", id="default"),
                  pytest.param("json", "CreateTranscriptionResponseJson", id="json"),
                  pytest.param("verbose_json", "CreateTranscriptionResponseVerboseJson", id="verbose_json")]
# (model, served from the cache)
TRANSCRIBERS = [pytest.param("sim/whisper-sim", False, id="sim"), pytest.param("openai/whisper-1", False, id="openai"),
                pytest.param("sim/whisper-sim", True, id="cached-sim")]


@pytest.mark.parametrize(("fmt", "schema"), TRANSCRIPTIONS)
@pytest.mark.parametrize(("model", "cached"), TRANSCRIBERS)
def test_transcriptions(gateway: Cluster, openai_schemas: OpenAISchemas, model: str, fmt: str | None, schema: str,
                        cached: bool) -> None:
    extra = {"timestamp_granularities[]": ["word", "segment"]} if fmt == "verbose_json" else {}
    answer = _json(_ok(gateway, "/audio/transcriptions", cached, **_audio_form(model, fmt, **extra)))
    openai_schemas.check(schema, answer)


@pytest.mark.parametrize(("fmt", "schema"), TRANSCRIPTIONS[1:])
def test_transcription_of_an_audio_url(gateway: Cluster, openai_schemas: OpenAISchemas, fmt: str, schema: str) -> None:
    url = f"{gateway.sim_url}/_sim/audio/meeting.wav?seconds=3"
    answer = _json(_ok(gateway, "/audio/transcriptions",
                       json={"model": "sim/whisper-sim", "audio_url": url, "response_format": fmt}))
    openai_schemas.check(schema, answer)


@pytest.mark.parametrize(("fmt", "schema"), [("json", "CreateTranslationResponseJson"),
                                             ("verbose_json", "CreateTranslationResponseVerboseJson")])
def test_audio_translations(gateway: Cluster, openai_schemas: OpenAISchemas, fmt: str, schema: str) -> None:
    answer = _json(_ok(gateway, "/audio/translations", **_audio_form("openai/whisper-1", fmt)))
    openai_schemas.check(schema, answer)
