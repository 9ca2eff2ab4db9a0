"""A catalog model sent to an endpoint it cannot serve is the client's 400 on `model`, naming
its modality and suggesting models that can; a fallback that cannot serve it is skipped; a
model the catalog does not know still goes to the provider."""

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.integration.api import call
from tests.integration.cluster import Cluster
from tools.upstream_sim.openai_media import PNG

WAV = ("clip.wav", b"\x00" * 2000, "audio/wav")
USER = [{"role": "user", "content": "hello"}]


def _refused(call_: Callable[[], Any], modality: str, suggested: str) -> str:
    with pytest.raises(openai.BadRequestError) as err:
        call_()
    error = err.value.body
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", 400, "model"), error
    assert f" {modality} model (" in error["message"] and suggested in error["message"], error["message"]
    return str(error["message"])


def test_embeddings_with_a_chat_model(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    message = _refused(lambda: gateway.client().embeddings.create(model="openai/gpt-4o", input="x"),
                       "text", "openai/text-embedding-3-")
    assert "/v1/embeddings needs an embedding model" in message
    assert not [e for e in gateway.sim_journal() if e["path"] == "/v1/embeddings"]  # never forwarded


def test_transcription_with_a_chat_model(gateway: Cluster) -> None:
    message = _refused(lambda: gateway.client().audio.transcriptions.create(model="openai/gpt-4o", file=WAV),
                       "text", "openai/whisper-1")
    assert "audio-stt" in message and "does not serve" not in message


def test_transcription_with_a_moderation_model(gateway: Cluster) -> None:
    _refused(lambda: gateway.client().audio.transcriptions.create(model="sim/moderation-sim", file=WAV),
             "moderation", "whisper")


@pytest.mark.parametrize(("send", "modality", "suggested"), [
    (lambda c: c.chat.completions.create(model="sim/embed-sim", messages=USER), "embedding", "sim/gpt-sim"),
    (lambda c: c.images.generate(model="sim/gpt-sim", prompt="a cat"), "text", "sim/image-sim"),
    # An image model that cannot edit: the right modality, not the capability.
    (lambda c: c.images.edit(model="openai/dall-e-3", image=("in.png", PNG, "image/png"), prompt="blue"),
     "image", "openai/gpt-image-1"),
    (lambda c: c.audio.speech.create(model="sim/whisper-sim", voice="alloy", input="hi"), "audio-stt",
     "sim/tts-sim"),
    (lambda c: c.audio.translations.create(model="sim/tts-sim", file=WAV), "audio-tts", "sim/whisper-sim"),
    (lambda c: c.moderations.create(model="sim/gpt-sim", input="hi"), "text", "sim/moderation-sim"),
    (lambda c: c.responses.create(model="sim/tts-sim", input="hi"), "audio-tts", "sim/gpt-sim"),
    (lambda c: c.responses.create(model="sim/tts-sim", input="hi", stream=True), "audio-tts", "sim/gpt-sim"),
], ids=["chat", "images", "image-edits", "speech", "audio-translations", "moderations", "responses",
        "responses-stream"])
def test_each_endpoint_refuses_a_model_of_another_modality(gateway: Cluster, send: Callable[[openai.OpenAI], Any],
                                                          modality: str, suggested: str) -> None:
    _refused(lambda: send(gateway.client()), modality, suggested)


def test_messages_with_an_embedding_model(gateway: Cluster) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.admin_key,
                                 max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(model="sim/embed-sim", max_tokens=8, messages=USER)
    assert "is an embedding model (embeddings)" in err.value.message and "sim/gpt-sim" in err.value.message


@pytest.mark.parametrize(("path", "body", "suggested"), [
    ("/translations", {"text": "hello", "target_lang": "fr", "model": "sim/embed-sim"}, "sim/gpt-sim"),
    ("/ocr", {"image_url": "https://example.com/cat.png", "model": "sim/image-sim"}, "sim/gpt-sim"),
])
def test_utilities_refuse_a_model_that_cannot_chat(gateway: Cluster, path: str, body: dict[str, Any],
                                                  suggested: str) -> None:
    response = call(gateway, "POST", path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "model" and suggested in error["message"], error


def test_a_fallback_that_cannot_serve_is_skipped(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="sim/gpt-sim+status=503", messages=USER, extra_body={"models": ["sim/embed-sim", "local/gpt-sim"]})
    assert (raw.headers["X-Model"], raw.headers["X-Provider"]) == ("local/gpt-sim", "local")
    assert "embed-sim" not in [e["body"]["model"] for e in gateway.sim_journal()]


def test_a_model_not_in_the_catalog_is_still_forwarded(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    client = gateway.client()
    vectors = client.embeddings.create(model="sim/gpt-sim-embedder", input="hello")
    assert vectors.data and vectors.data[0].embedding
    text = client.audio.transcriptions.create(model="openai/gpt-4o-transcribe-x", file=WAV)
    assert text.text
    models = [(e["path"], e["body"]["model"]) for e in gateway.sim_journal()]
    assert ("/v1/embeddings", "gpt-sim-embedder") in models
    assert ("/v1/audio/transcriptions", "gpt-4o-transcribe-x") in models
