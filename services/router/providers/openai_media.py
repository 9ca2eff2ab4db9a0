"""The OpenAI image, audio and moderation APIs, for the OpenAI-compatible adapter.

Requests pass through like chat: a JSON body gets its `model` rewritten; a
multipart form (transcriptions, audio translations, image edits) gets only its
`model` field's value replaced, byte for byte otherwise, and is sent with the
client's Content-Type (same boundary). Answers pass through too, binary ones
(speech) with the provider's Content-Type. What the gateway meters:

  images.generations / images.edits   output units = images returned; for token-billed models
                                      (gpt-image-*, whose answer has `usage`) input/output tokens
  audio.speech                        input units = characters of `input`
  audio.transcriptions / translations the response's `usage`: tokens, or seconds of
                                      audio for duration-billed models; else 0
  moderations                         nothing (0 units)
"""

import math
from typing import Final

import msgspec

from libs.contracts.bus.inference import (
    FORM_OPERATIONS,
    OP_AUDIO_TRANSLATIONS,
    OP_IMAGE_EDITS,
    OP_IMAGES,
    OP_MODERATIONS,
    OP_SPEECH,
    OP_TRANSCRIPTIONS,
    Usage,
)
from libs.contracts.http.multipart import FormError, replace_field
from services.router.providers.base import UpstreamError

MEDIA_PATHS: Final = {
    OP_IMAGES: "/images/generations",
    OP_IMAGE_EDITS: "/images/edits",
    OP_MODERATIONS: "/moderations",
    OP_SPEECH: "/audio/speech",
    OP_TRANSCRIPTIONS: "/audio/transcriptions",
    OP_AUDIO_TRANSLATIONS: "/audio/translations",
}


class _ImageUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0


class _Images(msgspec.Struct):
    data: list[msgspec.Raw] = []
    usage: _ImageUsage | None = None


class _Moderation(msgspec.Struct):
    results: list[msgspec.Raw] = []


class _SpeechInput(msgspec.Struct):
    input: str = ""


class _AudioUsage(msgspec.Struct):
    type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


class _Transcription(msgspec.Struct):
    usage: _AudioUsage | None = None


_decode_images = msgspec.json.Decoder(_Images).decode
_decode_moderation = msgspec.json.Decoder(_Moderation).decode
_decode_speech = msgspec.json.Decoder(_SpeechInput).decode
_decode_transcription = msgspec.json.Decoder(_Transcription).decode


def form_payload(body: bytes, content_type: str | None, upstream_model: str) -> bytes:
    """The client's form with `model` set to the provider's name for it."""
    try:
        return replace_field(body, content_type, "model", upstream_model)
    except FormError as exc:
        raise UpstreamError("malformed", str(exc), status=400) from exc


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in ("application/json", "text/json")


def media_usage(operation: str, request: bytes, answer: bytes, content_type: str) -> Usage:
    """What to meter for a media answer; raises msgspec.DecodeError for a malformed JSON answer."""
    if operation in (OP_IMAGES, OP_IMAGE_EDITS):
        images = _decode_images(answer)
        if images.usage is not None and (images.usage.input_tokens or images.usage.output_tokens):
            return Usage(input_units=images.usage.input_tokens, output_units=images.usage.output_tokens)
        return Usage(output_units=len(images.data))
    if operation == OP_MODERATIONS:
        _decode_moderation(answer)  # proves the answer is a well-formed JSON object
        return Usage()
    if operation == OP_SPEECH:
        try:
            return Usage(input_units=len(_decode_speech(request).input))
        except msgspec.DecodeError:
            return Usage()  # the request was validated at the edge; never fail an answered call
    if operation in FORM_OPERATIONS and is_json(content_type):
        usage = _decode_transcription(answer).usage
        if usage is None:
            return Usage()
        if usage.type == "duration":
            return Usage(input_units=math.ceil(usage.seconds))
        return Usage(input_units=usage.input_tokens, output_units=usage.output_tokens)
    return Usage()  # text, srt or vtt transcripts carry no usage
