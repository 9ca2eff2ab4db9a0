"""Images, audio, moderation and the utility endpoints: authenticate, validate
once, hand the client's original bytes to the router on the modality subject.

JSON bodies are validated with the Structs of libs/contracts/http/modalities.py.
Multipart forms (transcriptions, audio translations, image edits) are checked
only for their size (the body limit), their `model` and their file part: the
edge scans the part headers and never decodes a file. Passthrough operations
need a named model; the moderation and utility endpoints pick the cheapest
capable model when `model` is omitted (x-routing may say otherwise).
"""

from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import (
    OP_AUDIO_TRANSLATIONS,
    OP_CLASSIFICATIONS,
    OP_DETECTIONS,
    OP_IMAGE_EDITS,
    OP_IMAGES,
    OP_MODERATIONS,
    OP_OCR,
    OP_RERANK,
    OP_SPEECH,
    OP_TRANSCRIPTIONS,
    OP_TRANSLATIONS,
    InferenceRequest,
)
from libs.contracts.http.chat import AUTO_MODEL
from libs.contracts.http.modalities import (
    AudioUrlRequest,
    ClassificationRequest,
    ImageGenerationRequest,
    ImageInputRequest,
    ModerationRequest,
    RerankRequest,
    SpeechRequest,
    TranslationRequest,
)
from libs.contracts.http.multipart import FormError, field, form_parts, is_form
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.inference import _routing, admit, cache_mode, send, snapshot_wanted, tag_of
from services.edge.spans import traceparent_for
from services.edge.validation import validate

_decode_image = msgspec.json.Decoder(ImageGenerationRequest).decode
_decode_audio_url = msgspec.json.Decoder(AudioUrlRequest).decode
_decode_speech = msgspec.json.Decoder(SpeechRequest).decode
_decode_moderation = msgspec.json.Decoder(ModerationRequest).decode
_decode_translation = msgspec.json.Decoder(TranslationRequest).decode
_decode_classification = msgspec.json.Decoder(ClassificationRequest).decode
_decode_rerank = msgspec.json.Decoder(RerankRequest).decode
_decode_image_input = msgspec.json.Decoder(ImageInputRequest).decode

_CHAT = ("chat",)
_VISION = ("chat", "vision")


async def _relay(request: web.Request, operation: str, model: str, admitted: tuple[Any, ...], *,
                 needs: Iterable[str] = (), content_type: str | None = None, outputs: int = 1) -> web.StreamResponse:
    state, principal, sub, body = admitted
    auto = model == AUTO_MODEL
    message = InferenceRequest(
        request_id=request[REQUEST_ID], operation=operation, model=model, body=body, principal=principal,
        tag=tag_of(request, sub), traceparent=traceparent_for(request),
        routing=(_routing(request) or "cost") if auto else None, needs=list(needs) if auto else [],
        cache=cache_mode(request), content_type=content_type, snapshot=snapshot_wanted(request, state, sub))
    # A form's body is a file, not text: its units are the provider's to count (estimate error).
    worst = state.spend.estimate([model], body, outputs, text_input=content_type is None)
    hold = await state.spend.hold(principal, sub, worst)
    return await send(request, state, sub, hold, subjects.INFER_MODALITY, message)


def _named(model: str, kind: str) -> str:
    if model == AUTO_MODEL:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"Name the {kind} model in `model` (GET /v1/models?modality={kind} lists them).",
                           param="model")
    return model


# OpenAI-compatible passthrough ---------------------------------------------------------------

async def images_generations(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: ImageGenerationRequest = validate(_decode_image, admitted.body)
    return await _relay(request, OP_IMAGES, _named(parsed.model, "image"), admitted, outputs=parsed.n or 1)


async def audio_speech(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: SpeechRequest = validate(_decode_speech, admitted.body)
    return await _relay(request, OP_SPEECH, _named(parsed.model, "audio-tts"), admitted)


async def moderations(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: ModerationRequest = validate(_decode_moderation, admitted.body)
    return await _relay(request, OP_MODERATIONS, parsed.model, admitted, needs=("moderation",))


def form_model(body: bytes, content_type: str | None, file_fields: tuple[str, ...], kind: str) -> str:
    """The `model` of a multipart form that also has one of `file_fields`; 400 naming what is missing."""
    if not body:
        raise GatewayError(400, errors.INVALID_REQUEST, "Request body is empty; send a multipart/form-data form.")
    if not is_form(content_type):
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"Send this endpoint a multipart/form-data form with `model` and `{file_fields[0]}`.")
    try:
        parts = form_parts(body, content_type)
    except FormError as exc:
        raise GatewayError(400, errors.INVALID_REQUEST, f"Malformed multipart body: {exc}") from exc
    model = field(body, parts, "model")
    if not model:
        raise GatewayError(400, errors.INVALID_REQUEST, "Invalid request body: missing required field `model`.",
                           param="model")
    if not any(p.name in file_fields for p in parts):
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"Invalid request body: missing required file part `{file_fields[0]}`.",
                           param=file_fields[0])
    return _named(model.strip(), kind)


async def _form(request: web.Request, operation: str, file_fields: tuple[str, ...], kind: str) -> web.StreamResponse:
    admitted = await admit(request)
    content_type = request.headers.get("Content-Type")
    if kind == "audio-stt" and (content_type or "").split(";", 1)[0].strip().lower() == "application/json":
        # The contract's other form: {"model", "audio_url"}; the router fetches the audio.
        parsed: AudioUrlRequest = validate(_decode_audio_url, admitted.body)
        return await _relay(request, operation, _named(parsed.model, kind), admitted,
                            content_type="application/json")
    model = form_model(admitted.body, content_type, file_fields, kind)
    return await _relay(request, operation, model, admitted, content_type=content_type)


async def audio_transcriptions(request: web.Request) -> web.StreamResponse:
    return await _form(request, OP_TRANSCRIPTIONS, ("file",), "audio-stt")


async def audio_translations(request: web.Request) -> web.StreamResponse:
    return await _form(request, OP_AUDIO_TRANSLATIONS, ("file",), "audio-stt")


async def images_edits(request: web.Request) -> web.StreamResponse:
    return await _form(request, OP_IMAGE_EDITS, ("image", "image[]"), "image")


# Utilities implemented on a chat model (services/router/utilities.py) --------------------------

async def translations(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: TranslationRequest = validate(_decode_translation, admitted.body)
    return await _relay(request, OP_TRANSLATIONS, parsed.model, admitted, needs=_CHAT)


async def classifications(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: ClassificationRequest = validate(_decode_classification, admitted.body)
    return await _relay(request, OP_CLASSIFICATIONS, parsed.model, admitted, needs=_CHAT)


async def rerank(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    parsed: RerankRequest = validate(_decode_rerank, admitted.body)
    return await _relay(request, OP_RERANK, parsed.model, admitted, needs=_CHAT)


def _image_input(body: bytes) -> ImageInputRequest:
    parsed: ImageInputRequest = validate(_decode_image_input, body)
    if (parsed.image_url is None) == (parsed.image_b64 is None):
        raise GatewayError(400, errors.INVALID_REQUEST, "Send exactly one of image_url and image_b64.",
                           param="image_url")
    return parsed


async def detections(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    return await _relay(request, OP_DETECTIONS, _image_input(admitted.body).model, admitted, needs=_VISION)


async def ocr(request: web.Request) -> web.StreamResponse:
    admitted = await admit(request)
    return await _relay(request, OP_OCR, _image_input(admitted.body).model, admitted, needs=_VISION)


def add_routes(app: web.Application) -> None:
    for path, handler in (
        ("/v1/images/generations", images_generations), ("/v1/images/edits", images_edits),
        ("/v1/audio/speech", audio_speech), ("/v1/audio/transcriptions", audio_transcriptions),
        ("/v1/audio/translations", audio_translations), ("/v1/moderations", moderations),
        ("/v1/translations", translations), ("/v1/classifications", classifications), ("/v1/rerank", rerank),
        ("/v1/detections", detections), ("/v1/ocr", ocr),
    ):
        app.router.add_post(path, handler)
