"""What the inference endpoints answer, as the OpenAPI document describes it.

The router relays the provider's JSON (normalised to OpenAI's shape for chat) with the
gateway's `meta` appended (response_meta.py), so these Structs name only the fields a
client can count on and leave the rest open: a provider adding fields never breaks the
description. Nothing decodes with them on the hot path; services/edge/openapi/ builds the
document from them.
"""

from typing import Any

import msgspec

from libs.contracts.http.meta import ResponseMeta
from libs.contracts.http.modalities import Classification, DetectedObject, LabelScore, RerankResult


class ToolCallFunction(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class AssistantToolCall(msgspec.Struct):
    id: str | None = None
    type: str | None = None
    function: ToolCallFunction | None = None


class AssistantMessage(msgspec.Struct):
    role: str = "assistant"
    # A string from every provider we know; a list of parts from a few (Mistral).
    content: str | list[dict[str, Any]] | None = None
    refusal: str | None = None
    tool_calls: list[AssistantToolCall] | None = None
    reasoning_content: str | None = None


class CompletionChoice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str | None = None


class CompletionUsage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int | None = None
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ChatCompletion(msgspec.Struct):
    """POST /v1/chat/completions without `stream` (with `stream`, SSE chunks of the same fields)."""

    id: str
    choices: list[CompletionChoice]
    model: str
    object: str = "chat.completion"
    created: int | None = None
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    meta: ResponseMeta | None = None


class Embedding(msgspec.Struct):
    index: int
    embedding: list[float] | str  # a string when encoding_format is base64
    object: str = "embedding"


class EmbeddingsUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int | None = None


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]
    model: str
    object: str = "list"
    usage: EmbeddingsUsage | None = None
    meta: ResponseMeta | None = None


class ImageData(msgspec.Struct):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(msgspec.Struct):
    """POST /v1/images/generations and /v1/images/edits."""

    data: list[ImageData]
    created: int | None = None
    usage: dict[str, Any] | None = None
    meta: ResponseMeta | None = None


class Transcription(msgspec.Struct):
    """POST /v1/audio/transcriptions and /v1/audio/translations with a JSON response_format."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    meta: ResponseMeta | None = None


class ModerationResult(msgspec.Struct):
    flagged: bool
    categories: dict[str, Any] = {}
    category_scores: dict[str, Any] = {}


class ModerationResponse(msgspec.Struct):
    id: str
    model: str
    results: list[ModerationResult]
    meta: ResponseMeta | None = None


class AnthropicUsage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class AnthropicMessageAnswer(msgspec.Struct):
    """POST /v1/messages: Anthropic's Message (with `stream`, Anthropic's SSE events)."""

    id: str
    type: str
    role: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: AnthropicUsage | None = None
    meta: ResponseMeta | None = None


class ResponseObject(msgspec.Struct):
    """POST /v1/responses: OpenAI's Response (with `stream`, the Responses SSE events)."""

    id: str
    object: str
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    meta: ResponseMeta | None = None


# The utility endpoints: the answer the router builds from a chat model's JSON, with the chat
# call's `usage` and `meta` appended (services/router/utilities.py).

class TranslationAnswer(msgspec.Struct):
    translated_text: str
    target_lang: str
    model: str
    source_lang: str | None = None
    usage: CompletionUsage | None = None
    meta: ResponseMeta | None = None


class ClassificationAnswer(msgspec.Struct):
    """One input: its label and scores; a list of inputs: `results`, one Classification each."""

    label: str | None = None
    score: float | None = None
    labels: list[LabelScore] | None = None
    results: list[Classification] | None = None
    usage: CompletionUsage | None = None
    meta: ResponseMeta | None = None


class RerankAnswer(msgspec.Struct):
    results: list[RerankResult]
    usage: CompletionUsage | None = None
    meta: ResponseMeta | None = None


class DetectionAnswer(msgspec.Struct):
    objects: list[DetectedObject]
    usage: CompletionUsage | None = None
    meta: ResponseMeta | None = None


class OcrAnswer(msgspec.Struct):
    text: str
    usage: CompletionUsage | None = None
    meta: ResponseMeta | None = None
