"""Images, audio and moderation with the official openai SDK, and the utility endpoints
(implemented on a chat model) with httpx, through edge -> NATS -> router -> simulator."""

import base64
import hashlib
from typing import Any

import httpx
import openai
import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import MAX_BODY_BYTES, Cluster
from tools.upstream_sim.openai_media import PNG


def _entries(gateway: Cluster, path: str) -> list[dict[str, Any]]:
    return [e for e in gateway.sim_journal() if e["path"] == path]


# OpenAI-compatible passthrough -----------------------------------------------------------------

def test_images_generate_meters_images(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    raw = gateway.client().images.with_raw_response.generate(
        model="sim/image-sim", prompt="a red square", n=2, size="256x256", response_format="b64_json")
    images = raw.parse()
    assert len(images.data) == 2
    assert base64.b64decode(images.data[0].b64_json) == PNG
    assert raw.headers["X-Model"] == "sim/image-sim" and raw.headers["X-Provider"] == "sim"
    assert raw.headers["X-Output-Units"] == "2"
    assert raw.headers["X-Cost-Cents"] == "4.2000"  # 2 images x $0.02, plus 5 %
    meta = raw.http_response.json()["meta"]
    assert meta["usage"]["output_units"] == 2 and meta["cost"]["total_micros"] == 42_000
    (seen,) = _entries(gateway, "/v1/images/generations")
    assert seen["body"]["model"] == "image-sim" and seen["body"]["size"] == "256x256"
    stored = generation(gateway, raw.headers["X-Request-Id"])
    assert stored["operation"] == "images.generations" and stored["model"] == "sim/image-sim"


def test_images_generate_url_through_the_openai_provider(gateway: Cluster) -> None:
    images = gateway.client().images.generate(model="openai/dall-e-3", prompt="a cat", response_format="url")
    assert images.data[0].url and images.data[0].url.endswith(".png")


def test_images_edit_uploads_the_file(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    raw = gateway.client().images.with_raw_response.edit(
        model="sim/image-sim", image=("in.png", PNG, "image/png"), prompt="make it blue")
    edited = raw.parse()
    assert edited.data[0].revised_prompt == "Edited in.png: make it blue"
    assert raw.headers["X-Output-Units"] == "1"
    (seen,) = _entries(gateway, "/v1/images/edits")
    assert seen["body"]["model"] == "image-sim"  # the form's model field, rewritten
    assert {"image", "prompt", "model"} <= set(seen["body"]["form_fields"])
    assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")


def test_speech_returns_the_audio_bytes_untouched(gateway: Cluster) -> None:
    # An input whose "audio" ends in `}`: a JSON-only step (meta) must leave it alone.
    text = next(f"hello {n}" for n in range(10_000)
                if hashlib.sha256(f"tts-sim\0alloy\0hello {n}".encode()).digest().endswith(b"}"))
    raw = gateway.client().audio.speech.with_raw_response.create(model="sim/tts-sim", voice="alloy", input=text)
    audio = raw.http_response.content
    assert raw.headers["content-type"] == "audio/mpeg"
    expected = hashlib.sha256(f"tts-sim\0alloy\0{text}".encode()).digest()
    assert audio == b"ID3\x04\x00\x00\x00\x00\x00\x00" + expected
    assert text == "hello 52" and raw.headers["X-Model"] == "sim/tts-sim" and raw.headers["X-Input-Units"] == "8"
    assert raw.headers["X-Cost-Cents"] == "0.0126"  # 8 characters at $15 per million (120 micros), plus 5 %
    flac = gateway.client().audio.speech.with_raw_response.create(
        model="sim/tts-sim", voice="alloy", input="hello world", response_format="flac")
    assert flac.headers["content-type"] == "audio/flac"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # this SDK marks audio.translations deprecated
def test_transcription_and_translation_upload_the_file(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    client = gateway.client()
    raw = client.audio.transcriptions.with_raw_response.create(
        model="sim/whisper-sim", file=("clip.wav", b"\x00" * 20_000, "audio/wav"), language="en")
    assert raw.parse().text == "Transcript of clip.wav (20000 bytes)"
    assert raw.headers["X-Input-Units"] == "2"  # seconds of audio, from the answer's usage
    assert "meta" in raw.http_response.json()
    (seen,) = _entries(gateway, "/v1/audio/transcriptions")
    assert set(seen["body"]["form_fields"]) == {"model", "language", "file"}
    assert seen["body"]["model"] == "whisper-sim"
    text = client.audio.transcriptions.create(model="sim/whisper-sim", file=("a.mp3", b"abc", "audio/mpeg"),
                                              response_format="text")
    assert text.strip() == "Transcript of a.mp3 (3 bytes)"  # a text answer is passed through as text
    translated = client.audio.translations.create(model="openai/whisper-1", file=("talk.ogg", b"1234", "audio/ogg"))
    assert translated.text == "Transcript of talk.ogg (4 bytes)"
    (seen,) = _entries(gateway, "/v1/audio/translations")
    assert seen["body"]["model"] == "whisper-1"


def test_transcription_by_url_fetches_the_audio(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    url = f"{gateway.sim_url}/_sim/audio/meeting.wav?seconds=3"
    response = call(gateway, "POST", "/audio/transcriptions",
                    json={"model": "sim/whisper-sim", "audio_url": url, "language": "en"})
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Transcript of meeting.wav (48000 bytes)"
    assert response.headers["X-Input-Units"] == "3"  # seconds, metered like an upload
    (seen,) = _entries(gateway, "/v1/audio/transcriptions")
    assert seen["body"]["model"] == "whisper-sim" and set(seen["body"]["form_fields"]) == {"model", "language",
                                                                                           "file"}
    translated = call(gateway, "POST", "/audio/translations",
                      json={"model": "openai/whisper-1", "audio_url": url, "response_format": "text"})
    assert translated.text.strip() == "Transcript of meeting.wav (48000 bytes)"


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"model": "sim/whisper-sim", "audio_url": "ftp://example.com/a.wav"}, "audio_url", "Invalid request body"),
    ({"model": "sim/whisper-sim"}, "audio_url", "missing required field"),
    ({"model": "sim/whisper-sim", "audio_url": "http://127.0.0.1:9/a.wav"}, "audio_url", "could not be fetched"),
    ({"model": "sim/whisper-sim", "audio_url": "{sim}/_sim/nothing-here.wav"}, "audio_url", "HTTP 404"),
])
def test_transcription_by_url_failures_are_the_clients_400(gateway: Cluster, body: dict[str, Any], param: str,
                                                           says: str) -> None:
    body = {**body, "audio_url": body["audio_url"].format(sim=gateway.sim_url)} if "audio_url" in body else body
    response = call(gateway, "POST", "/audio/transcriptions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"], error


def test_moderation_flags_and_picks_a_model_when_omitted(gateway: Cluster) -> None:
    client = gateway.client()
    result = client.moderations.create(model="sim/moderation-sim", input=["I will kill the process", "hello"])
    assert [r.flagged for r in result.results] == [True, False]
    assert result.results[0].categories.violence is True
    raw = client.moderations.with_raw_response.create(input="a friendly note")
    assert raw.parse().results[0].flagged is False
    assert raw.headers["X-Model"] in ("openai/omni-moderation-latest", "sim/moderation-sim")
    assert raw.headers["X-Input-Units"] == "0" and raw.headers["X-Cost-Cents"] == "0.0000"


# Utilities implemented on a chat model --------------------------------------------------------

def _utility(gateway: Cluster, path: str, body: dict[str, Any]) -> httpx.Response:
    response = call(gateway, "POST", path, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["meta"]["model"] == response.headers["X-Model"]
    assert answer["usage"]["prompt_tokens"] > 0
    return response


def _cheapest_text_model(gateway: Cluster, needs: set[str]) -> str:
    cards = call(gateway, "GET", "/models", params={"modality": "text"}).json()["data"]
    capable = [c for c in cards if c["pricing"] and needs <= set(c["capabilities"])]
    return min(capable, key=lambda c: c["pricing"]["input_per_mtok"] + (c["pricing"]["output_per_mtok"] or 0))["id"]


def test_translation(gateway: Cluster) -> None:
    gateway.clear_sim_journal()
    response = _utility(gateway, "/translations", {"text": "hello", "source_lang": "en", "target_lang": "fr",
                                                   "model": "sim/gpt-sim"})
    answer = response.json()
    assert answer["source_lang"] == "en" and answer["target_lang"] == "fr" and answer["model"] == "sim/gpt-sim"
    assert isinstance(answer["translated_text"], str)
    (seen,) = _entries(gateway, "/v1/chat/completions")
    assert seen["body"]["response_format"] == {"type": "json_object"}
    assert seen["body"]["messages"][1] == {"role": "user", "content": "hello"}
    default = _utility(gateway, "/translations", {"text": "bonjour", "target_lang": "en"})
    assert default.headers["X-Model"] == _cheapest_text_model(gateway, {"chat"})
    assert isinstance(default.json()["source_lang"], str)  # detected by the model


def test_classification(gateway: Cluster) -> None:
    answer = _utility(gateway, "/classifications", {"input": "great product", "labels": ["spam", "ham", "eggs"],
                                                    "model": "sim/gpt-sim"}).json()
    assert answer["label"] in ("spam", "ham", "eggs") and 0 <= answer["score"] <= 1
    assert sorted(item["label"] for item in answer["labels"]) == ["eggs", "ham", "spam"]
    many = _utility(gateway, "/classifications", {"input": ["good", "bad"]}).json()
    assert len(many["results"]) == 2
    assert {item["label"] for item in many["results"][0]["labels"]} == {"positive", "negative", "neutral"}


def test_rerank(gateway: Cluster) -> None:
    documents = ["cats purr", "dogs bark", "the sky is blue"]
    response = _utility(gateway, "/rerank", {"query": "pets", "documents": documents, "top_n": 2,
                                             "model": "openai/gpt-4o-mini"})
    results = response.json()["results"]
    assert len(results) == 2 and response.headers["X-Model"] == "openai/gpt-4o-mini"
    for result in results:
        assert documents[result["index"]] == result["document"] and 0 <= result["relevance_score"] <= 1
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]


@pytest.mark.parametrize("image", [{"image_url": "https://example.com/cat.png"},
                                   {"image_b64": base64.b64encode(PNG).decode()}])
def test_detections_and_ocr_on_a_vision_model(gateway: Cluster, image: dict[str, str]) -> None:
    gateway.clear_sim_journal()
    detections = _utility(gateway, "/detections", image)
    objects = detections.json()["objects"]
    assert objects and all(isinstance(o["label"], str) and 0 <= o["score"] <= 1 for o in objects)
    assert detections.headers["X-Model"] == _cheapest_text_model(gateway, {"chat", "vision"})
    ocr = _utility(gateway, "/ocr", {**image, "model": "sim/gpt-sim"})
    assert isinstance(ocr.json()["text"], str)
    (seen,) = [e for e in _entries(gateway, "/v1/chat/completions") if e["body"]["model"] == "gpt-sim"]
    parts = seen["body"]["messages"][1]["content"]
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == image.get("image_url", "data:image/png;base64," + image.get("image_b64", ""))


def test_utility_answers_are_cached(gateway: Cluster) -> None:
    body = {"query": "cache me", "documents": ["a", "b"], "model": "sim/gpt-sim"}
    first = _utility(gateway, "/rerank", body)
    second = _utility(gateway, "/rerank", {**body, "top_n": 1})
    assert first.headers["X-Cache-Status"].startswith("miss") and second.headers["X-Cache-Status"].startswith("hit")
    assert len(second.json()["results"]) == 1
    skipped = httpx.post(f"{gateway.base_url}/rerank", json=body, timeout=15,
                         headers={"Authorization": f"Bearer {gateway.admin_key}", "x-cache": "skip"})
    assert skipped.status_code == 200 and "X-Cache-Status" not in skipped.headers


# Failures -----------------------------------------------------------------------------------------

def _error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_ and error["code"] == status
    return error


def test_upstream_503_on_images_is_502(gateway: Cluster) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        gateway.client().images.generate(model="sim/image-sim+status=503", prompt="x")
    assert err.value.status_code == 502 and err.value.body["type"] == "provider_error"


def test_model_answer_that_is_not_json_is_502(gateway: Cluster) -> None:
    response = call(gateway, "POST", "/translations",
                    json={"text": "hello", "target_lang": "fr", "model": "sim/gpt-sim+plain"})
    error = _error(response, 502, "provider_error")
    assert "did not answer with the JSON object" in error["message"] and "Echo: hello" in error["message"]


def _form(gateway: Cluster, path: str, data: dict[str, str], files: dict[str, Any],
          key: str | None = None) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}{path}", data=data, files=files, timeout=15,
                      headers={"Authorization": f"Bearer {key or gateway.admin_key}"})


def test_form_validation(gateway: Cluster) -> None:
    no_file = _form(gateway, "/audio/transcriptions", {"model": "sim/whisper-sim"}, {"notes": ("a.txt", b"x")})
    assert _error(no_file, 400, "invalid_request_error")["param"] == "file"
    no_model = _form(gateway, "/audio/transcriptions", {}, {"file": ("a.wav", b"x")})
    assert _error(no_model, 400, "invalid_request_error")["param"] == "model"
    no_image = _form(gateway, "/images/edits", {"model": "sim/image-sim", "prompt": "x"}, {"file": ("a.png", PNG)})
    assert _error(no_image, 400, "invalid_request_error")["param"] == "image"
    as_json = call(gateway, "POST", "/images/edits", json={"model": "sim/image-sim", "prompt": "x"})
    assert "multipart/form-data" in _error(as_json, 400, "invalid_request_error")["message"]


def test_oversized_multipart_is_413(gateway: Cluster) -> None:
    big = _form(gateway, "/audio/transcriptions", {"model": "sim/whisper-sim"},
                {"file": ("big.wav", b"\x00" * (MAX_BODY_BYTES + 1))})
    _error(big, 413, "invalid_request_error")


def test_json_validation(gateway: Cluster) -> None:
    no_model = call(gateway, "POST", "/images/generations", json={"prompt": "x"})
    assert _error(no_model, 400, "invalid_request_error")["param"] == "model"
    both = call(gateway, "POST", "/ocr", json={"image_url": "https://x/y.png", "image_b64": "iVBOR"})
    assert _error(both, 400, "invalid_request_error")["param"] == "image_url"
    _error(call(gateway, "POST", "/detections", json={}), 400, "invalid_request_error")
    no_docs = call(gateway, "POST", "/rerank", json={"query": "q", "documents": []})
    assert _error(no_docs, 400, "invalid_request_error")["param"] == "documents"
    _error(call(gateway, "POST", "/translations", json={"text": "hi"}), 400, "invalid_request_error")


def test_wrong_key_is_401(gateway: Cluster) -> None:
    bad = "sk-aig-not-a-real-key"
    with pytest.raises(openai.AuthenticationError):
        gateway.client(key=bad).images.generate(model="sim/image-sim", prompt="x")
    _error(_form(gateway, "/audio/transcriptions", {"model": "sim/whisper-sim"}, {"file": ("a.wav", b"x")}, key=bad),
           401, "authentication_error")
    _error(call(gateway, "POST", "/rerank", key=bad, json={"query": "q", "documents": ["d"]}),
           401, "authentication_error")


def test_gpt_image_is_billed_in_the_tokens_it_reports(gateway: Cluster) -> None:
    raw = gateway.client().images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a red square", n=2)
    assert len(raw.parse().data) == 2
    # 3 prompt tokens at $5/M + 2 x 1056 image tokens at $40/M = $0.084495, plus 5 %.
    assert (raw.headers["X-Input-Units"], raw.headers["X-Output-Units"]) == ("3", "2112")
    assert raw.headers["X-Cost-Cents"] == "8.8720"  # 84,495 micro-dollars + 4,225 markup
    edit = gateway.client().images.with_raw_response.edit(
        model="openai/gpt-image-1", image=("in.png", PNG, "image/png"), prompt="make it blue")
    # "Edited in.png: make it blue" is 5 words, plus 323 tokens for the input image.
    assert (edit.headers["X-Input-Units"], edit.headers["X-Output-Units"]) == ("328", "1056")
    stored = generation(gateway, edit.headers["X-Request-Id"])
    assert stored["usage"]["input_units"] == 328 and stored["cost"]["total_micros"] > 0
