"""The MCP tools: one per capability, each a call of the gateway's own HTTP API.

A tool's input schema is the JSON Schema of the Struct its endpoint validates with, so
the MCP surface accepts exactly what the HTTP API accepts (and rejects it with the same
message). Tools without a body (reads by id, lists, reports) take the small Structs of
libs/contracts/http/mcp.py as path and query parameters.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import mcp_types as types
import msgspec

from libs.contracts import errors
from libs.contracts.errors import ErrorBody, error_json
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from libs.contracts.http.evals import EvalCreate
from libs.contracts.http.jobs import AsyncJobRequest
from libs.contracts.http.mcp import EvalRef, JobRef, ModelSearch, ModelsFilter, UsageQuery
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
from libs.contracts.http.replays import ReplayCreate
from libs.contracts.ids import valid_id
from services.edge.mcp.schemas import input_schema

_JSON = "application/json"


class ApiCall(msgspec.Struct, frozen=True):
    """One request of the HTTP API, made on the caller's behalf."""

    method: str
    path: str  # below the edge's root, e.g. /v1/chat/completions
    query: dict[str, str] = {}
    body: bytes | None = None  # JSON


class ApiAnswer(msgspec.Struct, frozen=True):
    status: int
    content_type: str
    body: bytes


class ArgumentsError(Exception):
    """Arguments that cannot form a request at all (not an object, a field of the wrong type)."""


Build = Callable[[dict[str, Any]], ApiCall | ApiAnswer]  # an ApiAnswer: decided without calling
Refine = Callable[[ApiAnswer, Any], ApiAnswer]


class ToolSpec(msgspec.Struct, frozen=True):
    name: str
    description: str
    arguments: type[msgspec.Struct]
    build: Build
    read_only: bool = False
    drop: tuple[str, ...] = ()  # fields of `arguments` the tool sets itself
    refine: Refine | None = None  # rework the API's answer (search_models filters the list)

    def tool(self) -> types.Tool:
        annotations = types.ToolAnnotations(read_only_hint=self.read_only, open_world_hint=not self.read_only)
        return types.Tool(name=self.name, description=self.description,
                          input_schema=input_schema(self.arguments, self.drop), annotations=annotations)


def _convert(args: dict[str, Any], struct: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.convert(args, struct)
    except msgspec.ValidationError as exc:
        raise ArgumentsError(f"Invalid arguments: {exc}") from exc


def _body(path: str, drop: tuple[str, ...] = ()) -> Build:
    """The arguments are the JSON body; the endpoint validates them itself."""

    def build(args: dict[str, Any]) -> ApiCall:
        body = {key: value for key, value in args.items() if key not in drop}
        return ApiCall("POST", path, body=msgspec.json.encode(body))

    return build


def _not_found(kind: str, id_: str) -> ApiAnswer:
    # The words the jobs service answers an unknown id with: an id that could never
    # exist reads exactly like one that does not (or is another tenant's).
    return ApiAnswer(404, _JSON, error_json(ErrorBody(f"No {kind} with id '{id_}' for this key.",
                                                      errors.INVALID_REQUEST, 404, "id")))


def _by_id(method: str, path: str, kind: str, struct: type[JobRef] | type[EvalRef]) -> Build:
    def build(args: dict[str, Any]) -> ApiCall | ApiAnswer:
        ref = _convert(args, struct)
        if not valid_id(ref.id):  # never let an odd id reshape the path
            return _not_found(kind, ref.id)
        return ApiCall(method, path.format(id=quote(ref.id, safe="")))

    return build


def _query(path: str, struct: type[msgspec.Struct]) -> Build:
    def build(args: dict[str, Any]) -> ApiCall:
        params = msgspec.to_builtins(_convert(args, struct))
        return ApiCall("GET", path, query={key: str(value) for key, value in params.items() if value is not None})

    return build


def _search_build(args: dict[str, Any]) -> ApiCall:
    search: ModelSearch = _convert(args, ModelSearch)
    return ApiCall("GET", "/v1/models", query={"modality": search.modality} if search.modality else {})


def _search_refine(answer: ApiAnswer, args: Any) -> ApiAnswer:
    if answer.status != 200:
        return answer
    search: ModelSearch = _convert(args, ModelSearch)
    words = search.query.lower().split()
    try:
        listing = msgspec.json.decode(answer.body, type=dict[str, Any])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return answer  # not the catalog's shape: show it as it came

    def text_of(card: dict[str, Any]) -> str:
        fields = [card.get(name) or "" for name in ("id", "provider", "upstream_model", "owned_by", "modality")]
        return " ".join([*map(str, fields), *map(str, card.get("capabilities") or [])]).lower()

    found = [card for card in listing.get("data", []) if all(word in text_of(card) for word in words)]
    return ApiAnswer(200, _JSON, msgspec.json.encode({"object": "list", "data": found[:search.limit],
                                                      "total": len(found)}))


def _generation(name: str, path: str, what: str) -> ToolSpec:
    return ToolSpec(name, f"Start {what} as an async job; answers {{id, status: queued}} at once. Poll it with "
                    "get_job (queued -> processing -> completed with result files, or failed), or pass webhook_url. "
                    "model: omitted or 'auto' picks the cheapest enabled model of the modality.", AsyncJobRequest,
                    _body(path))


_USAGE = ("Spend and requests of this key's account over a period (the current month by default): rows with "
          "requests, errors, input/output units, cost in micro-dollars and cents, p50/p95 latency, plus a total. "
          "A sub-account key sees only its own traffic.")

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("chat", "Chat completion (OpenAI format) on any text model: messages, tools, response_format. "
             "model: a slug from list_models, or 'auto' to let the gateway route. With webhook_url it runs as "
             "a job instead (see get_job).", ChatCompletionRequest,
             _body("/v1/chat/completions", ("stream", "stream_options")), drop=("stream", "stream_options")),
    ToolSpec("embed", "Embeddings of a text or a list of texts (OpenAI format).", EmbeddingsRequest,
             _body("/v1/embeddings")),
    ToolSpec("generate_image", "Generate images from a prompt (OpenAI format). With response_format b64_json "
             "the images come back as image content.", ImageGenerationRequest, _body("/v1/images/generations")),
    ToolSpec("transcribe", "Speech to text of the audio at audio_url (the gateway fetches it).", AudioUrlRequest,
             _body("/v1/audio/transcriptions")),
    ToolSpec("speak", "Text to speech; the audio comes back as audio content.", SpeechRequest,
             _body("/v1/audio/speech")),
    ToolSpec("translate", "Translate text into target_lang (source_lang detected when omitted).",
             TranslationRequest, _body("/v1/translations")),
    ToolSpec("classify", "Classify text into labels with scores (sentiment when no labels are given).",
             ClassificationRequest, _body("/v1/classifications")),
    ToolSpec("moderate", "Content moderation of text (or text and images): flagged categories and scores.",
             ModerationRequest, _body("/v1/moderations")),
    ToolSpec("rerank", "Order documents by relevance to a query (for RAG).", RerankRequest, _body("/v1/rerank")),
    ToolSpec("ocr", "Extract the text of an image: exactly one of image_url and image_b64.", ImageInputRequest,
             _body("/v1/ocr")),
    ToolSpec("detect_objects", "Detect objects in an image (labels, scores, boxes as fractions of the image): "
             "exactly one of image_url and image_b64.", ImageInputRequest, _body("/v1/detections")),
    _generation("generate_video", "/v1/videos/generations", "a video generation (text or image to video)"),
    _generation("generate_music", "/v1/audio/music", "a music generation"),
    _generation("generate_3d", "/v1/3d/generations", "a 3D model generation (GLB)"),
    ToolSpec("get_job", "An async job's status, progress and, once completed, its result (files with URLs).",
             JobRef, _by_id("GET", "/v1/jobs/{id}", "job", JobRef), read_only=True),
    ToolSpec("cancel_job", "Cancel a queued or running job; a cancelled job is not billed.", JobRef,
             _by_id("DELETE", "/v1/jobs/{id}", "job", JobRef)),
    ToolSpec("list_models", "The model catalog: id, provider, modality, context window, capabilities and price "
             "per million units. Filter by modality or provider.", ModelsFilter, _query("/v1/models", ModelsFilter),
             read_only=True),
    ToolSpec("search_models", "Find models whose id, provider, modality or capabilities contain every word of "
             "query, e.g. 'vision', 'claude', 'embedding small'.", ModelSearch, _search_build, read_only=True,
             refine=_search_refine),
    ToolSpec("usage_by_tag", f"{_USAGE} Grouped by the x-aig-tag requests carried.", UsageQuery,
             _query("/v1/usage/by-tag", UsageQuery), read_only=True),
    ToolSpec("usage_by_sub_account", f"{_USAGE} Grouped by sub-account.", UsageQuery,
             _query("/v1/usage/by-sub-account", UsageQuery), read_only=True),
    ToolSpec("create_replay", "Re-run a past request (its X-Request-Id) on another model and compare cost, latency "
             "and output; shadow: true runs it in the background (poll GET /v1/replays/{id}).", ReplayCreate,
             _body("/v1/replays")),
    ToolSpec("create_eval", "Run a dataset across candidate models and score them (metric quality, cost or speed); "
             "poll it with get_eval. Route to the winner afterwards with model 'eval:<id>'.", EvalCreate,
             _body("/v1/evals")),
    ToolSpec("get_eval", "An eval's status, per-model results and winner.", EvalRef,
             _by_id("GET", "/v1/evals/{id}", "eval", EvalRef), read_only=True),
)
TOOL_NAMES = tuple(spec.name for spec in TOOLS)
