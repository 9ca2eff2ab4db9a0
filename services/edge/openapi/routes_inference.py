"""Route table: chat, embeddings, the Anthropic and Responses surfaces, images, audio,
moderation and the utility endpoints (services/edge/inference.py, surfaces.py, modalities.py)."""

from typing import Any, Final

from libs.contracts.http import inference_answers as answers
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from libs.contracts.http.jobs import JobAccepted
from libs.contracts.http.messages import MessagesRequest
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
from libs.contracts.http.responses import ResponsesRequest
from services.edge.openapi.table import (
    INFERENCE,
    INFERENCE_HEADERS,
    INFERENCE_READS,
    Answer,
    Body,
    Route,
    json_body,
    ok_json,
)

_ROUTED = (*INFERENCE_READS, "x-routing", "x-aig-snapshot")
_SSE = "text/event-stream"
_FILE: Final = {"type": "string", "format": "binary"}


def _form(file_field: str, *, required: tuple[str, ...], **fields: dict[str, Any]) -> dict[str, Any]:
    """A multipart/form-data schema: one file part and text fields (the edge reads only `model`)."""
    return {"type": "object", "properties": {file_field: _FILE, "model": {"type": "string", "minLength": 1},
                                             **fields},
            "required": [file_field, *required]}


_AUDIO_FORM = _form("file", required=("model",), language={"type": "string"}, prompt={"type": "string"},
                    response_format={"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"]},
                    temperature={"type": "number", "minimum": 0, "maximum": 1})
_TRANSCRIPT = Answer(status=200, description="The transcript: JSON, or text for text / srt / vtt formats.",
                     types=(("application/json", answers.Transcription), ("text/*", None)), headers=INFERENCE_HEADERS)


def _audio(path: str, operation_id: str, summary: str) -> Route:
    return Route(
        method="POST", path=path, operation_id=operation_id, tag="audio", summary=summary, auth="bearer",
        description="A multipart upload (`file`, `model`), or JSON with `audio_url` for the gateway to fetch.",
        body=Body(media=(("multipart/form-data", _AUDIO_FORM), ("application/json", AudioUrlRequest))),
        answers=(_TRANSCRIPT,), errors=INFERENCE, reads=INFERENCE_READS)


def _utility(path: str, operation_id: str, summary: str, request: type, answer: type, description: str) -> Route:
    return Route(method="POST", path=path, operation_id=operation_id, tag="modality-extra", summary=summary,
                 auth="bearer", description=description + " Runs on a chat model: omit `model` to let x-routing pick.",
                 body=json_body(request), answers=(ok_json(200, summary, answer, INFERENCE_HEADERS),),
                 errors=INFERENCE, reads=_ROUTED)


ROUTES: Final = (
    Route(method="POST", path="/v1/chat/completions", operation_id="createChatCompletion", tag="chat",
          summary="Create a chat completion", auth="bearer",
          description="OpenAI's chat completions on any provider. `stream: true` answers server-sent events; "
                      "`model` omitted or \"auto\" is chosen by x-routing; `models` are fallbacks tried in order; "
                      "`webhook_url` makes it an async job (202) whose result is the completion.",
          body=json_body(ChatCompletionRequest),
          answers=(Answer(status=200, description="The completion, or its chunks as SSE when stream is true.",
                          types=(("application/json", answers.ChatCompletion), (_SSE, None)),
                          headers=INFERENCE_HEADERS),
                   ok_json(202, "With webhook_url: the job that will run it (GET /v1/jobs/{id}).", JobAccepted)),
          errors=(*INFERENCE, 409), reads=(*_ROUTED, "Idempotency-Key")),
    Route(method="POST", path="/v1/embeddings", operation_id="createEmbeddings", tag="embeddings",
          summary="Create embeddings", auth="bearer", body=json_body(EmbeddingsRequest),
          answers=(ok_json(200, "The embeddings.", answers.EmbeddingList, INFERENCE_HEADERS),),
          errors=INFERENCE, reads=INFERENCE_READS),
    Route(method="POST", path="/v1/messages", operation_id="createMessage", tag="chat",
          summary="Create a message (Anthropic Messages API)", auth="bearer",
          description="Anthropic's Messages API on any provider; errors in Anthropic's shape inside a stream.",
          body=json_body(MessagesRequest),
          answers=(Answer(status=200, description="The message, or Anthropic's SSE events when stream is true.",
                          types=(("application/json", answers.AnthropicMessageAnswer), (_SSE, None)),
                          headers=INFERENCE_HEADERS),),
          errors=INFERENCE, reads=(*INFERENCE_READS, "x-aig-snapshot")),
    Route(method="POST", path="/v1/responses", operation_id="createResponse", tag="chat",
          summary="Create a response (OpenAI Responses API)", auth="bearer",
          description="OpenAI's Responses API on any provider. Stateless: previous_response_id, conversation "
                      "and background are refused by name.",
          body=json_body(ResponsesRequest),
          answers=(Answer(status=200, description="The response, or the Responses SSE events when stream is true.",
                          types=(("application/json", answers.ResponseObject), (_SSE, None)),
                          headers=INFERENCE_HEADERS),),
          errors=INFERENCE, reads=(*INFERENCE_READS, "x-aig-snapshot")),
    Route(method="POST", path="/v1/images/generations", operation_id="createImage", tag="images",
          summary="Generate images", auth="bearer", body=json_body(ImageGenerationRequest),
          answers=(ok_json(200, "The images.", answers.ImagesResponse, INFERENCE_HEADERS),),
          errors=INFERENCE, reads=_ROUTED),
    Route(method="POST", path="/v1/images/edits", operation_id="createImageEdit", tag="images",
          summary="Edit an image", auth="bearer",
          body=Body(media=(("multipart/form-data", _form("image", required=("model", "prompt"),
                                                         prompt={"type": "string", "minLength": 1},
                                                         mask=_FILE, n={"type": "integer"},
                                                         size={"type": "string"})),)),
          answers=(ok_json(200, "The edited images.", answers.ImagesResponse, INFERENCE_HEADERS),),
          errors=INFERENCE, reads=INFERENCE_READS),
    Route(method="POST", path="/v1/audio/speech", operation_id="createSpeech", tag="audio",
          summary="Text to speech", auth="bearer", body=json_body(SpeechRequest),
          answers=(Answer(status=200, description="The audio, in response_format (mp3 by default).",
                          types=(("audio/*", None), ("application/octet-stream", None)), kind="binary",
                          headers=INFERENCE_HEADERS),),
          errors=INFERENCE, reads=INFERENCE_READS),
    _audio("/v1/audio/transcriptions", "createTranscription", "Speech to text"),
    _audio("/v1/audio/translations", "createAudioTranslation", "Speech to English text"),
    Route(method="POST", path="/v1/moderations", operation_id="createModeration", tag="moderation",
          summary="Classify content for safety", auth="bearer", body=json_body(ModerationRequest),
          description="Omit `model` for the cheapest moderation model.",
          answers=(ok_json(200, "One result per input.", answers.ModerationResponse, INFERENCE_HEADERS),),
          errors=INFERENCE, reads=_ROUTED),
    _utility("/v1/translations", "createTranslation", "Translate text", TranslationRequest,
             answers.TranslationAnswer, "Text from source_lang (detected when omitted) into target_lang."),
    _utility("/v1/classifications", "createClassification", "Classify text", ClassificationRequest,
             answers.ClassificationAnswer, "Labels for one text or a list (sentiment when no labels are given)."),
    _utility("/v1/rerank", "createRerank", "Rerank documents", RerankRequest, answers.RerankAnswer,
             "Documents ordered by relevance to the query."),
    _utility("/v1/detections", "createDetection", "Detect objects in an image", ImageInputRequest,
             answers.DetectionAnswer, "Send exactly one of image_url and image_b64."),
    _utility("/v1/ocr", "createOcr", "Extract text from an image", ImageInputRequest, answers.OcrAnswer,
             "Send exactly one of image_url and image_b64."),
)
