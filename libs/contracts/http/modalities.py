"""Request bodies of the image, audio, moderation and utility endpoints, as the edge validates them.

Same policy as chat.py: the edge decodes once to reject bad input naming the
field, then forwards the client's original bytes; unknown fields pass through
to the provider. The utility endpoints (translations, classifications, rerank,
detections, ocr) are implemented on a chat model by the router; their answers
are described here too. Multipart bodies (transcriptions, translations of
audio, image edits) are checked by libs/contracts/http/multipart.py instead.
"""

from typing import Annotated, Any, Literal

import msgspec

from libs.contracts.http.chat import AUTO_MODEL

Text = Annotated[str, msgspec.Meta(min_length=1)]
Model = Annotated[str, msgspec.Meta(min_length=1)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
MAX_DOCUMENTS = 1000
MAX_LABELS = 100
MAX_INPUTS = 100


# OpenAI-compatible passthrough ---------------------------------------------------------------

class ImageGenerationRequest(msgspec.Struct):
    model: Model
    prompt: Text
    n: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: Literal["url", "b64_json"] | None = None


class SpeechRequest(msgspec.Struct):
    model: Model
    input: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    voice: str | dict[str, Any] | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] | None = None
    speed: Annotated[float, msgspec.Meta(ge=0.25, le=4.0)] | None = None


class AudioUrlRequest(msgspec.Struct):
    """POST /v1/audio/transcriptions (or translations) as JSON: the contract's `audio_url` form.
    The router fetches the audio and sends the provider the usual multipart upload."""

    model: Model
    audio_url: Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern="^https?://")]
    language: str | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


class ModerationRequest(msgspec.Struct):
    # Text, a list of texts, or a list of multimodal parts ({"type": "text" | "image_url", ...}).
    input: Text | Annotated[list[str | dict[str, Any]], msgspec.Meta(min_length=1)]
    model: Model = AUTO_MODEL


# Utilities implemented on a chat model ---------------------------------------------------------

class TranslationRequest(msgspec.Struct):
    text: Text
    target_lang: Text
    source_lang: Text | None = None  # detected by the model when omitted
    model: Model = AUTO_MODEL


class ClassificationRequest(msgspec.Struct):
    input: Text | Annotated[list[Text], msgspec.Meta(min_length=1, max_length=MAX_INPUTS)]
    # The candidate labels; default: sentiment (positive, negative, neutral).
    labels: Annotated[list[Text], msgspec.Meta(min_length=2, max_length=MAX_LABELS)] | None = None
    model: Model = AUTO_MODEL


class RerankRequest(msgspec.Struct):
    query: Text
    documents: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_DOCUMENTS)]
    top_n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    model: Model = AUTO_MODEL


class ImageInputRequest(msgspec.Struct):
    """POST /v1/detections and /v1/ocr: exactly one of image_url and image_b64."""

    image_url: Text | None = None
    image_b64: Text | None = None  # base64, or a data: URL
    model: Model = AUTO_MODEL


# Utility answers (without `usage` and `meta`, which the router appends from the chat call) -----

class Translation(msgspec.Struct):
    translated_text: str
    source_lang: str | None
    target_lang: str
    model: str


class LabelScore(msgspec.Struct):
    label: str
    score: float


class Classification(msgspec.Struct):
    label: str
    score: float
    labels: list[LabelScore]


class RerankResult(msgspec.Struct):
    index: int
    relevance_score: float
    document: str


class Box(msgspec.Struct):
    """Normalised coordinates: fractions (0..1) of the image's width and height."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float


class DetectedObject(msgspec.Struct, omit_defaults=True):
    label: str
    score: float
    box: Box | None = None
