"""The shape of the route table: what one HTTP route of the edge is, for the OpenAPI
document and llms.txt (document.py, llms_txt.py), and the vocabulary the entries share
(headers, error statuses, common parameters).

Types in an entry are the msgspec Structs (or any type msgspec describes) the handler
decodes and the service encodes; the document gets their JSON Schema from msgspec, so an
entry names a type and never restates its fields.
"""

from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import msgspec

Auth = Literal["bearer", "admin", "read-usage", "signed", "none"]
AnswerKind = Literal["json", "sse", "binary", "jsonl", "text", "html", "empty"]

# Who may call a route, as the document's security and llms.txt say it.
AUTH_NOTES: Final = MappingProxyType({
    "bearer": "any API key with the inference scope (sub-account keys too)",
    "admin": "an account-level key with the admin scope",
    "read-usage": "a key with the read-usage scope (a sub-account key sees only its own data)",
    "signed": "no key, the signed URL's query (account, expires, signature) is the authority",
    "none": "no key",
})
SCOPES: Final = MappingProxyType({"bearer": "inference", "admin": "admin", "read-usage": "read-usage"})


class Param(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    where: Literal["path", "query", "header"]
    type: Any = str  # any type msgspec can describe (Annotated bounds and Literal enums included)
    required: bool = False
    description: str = ""


class Body(msgspec.Struct, frozen=True, kw_only=True):
    """A request body: media type -> the Struct decoded from it, or an inline JSON Schema (forms)."""

    media: tuple[tuple[str, Any], ...]
    required: bool = True
    description: str = ""


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One success status. `types` pairs media types with what each carries: a Struct for JSON,
    None for a stream or bytes (described by `kind`)."""

    status: int
    description: str
    types: tuple[tuple[str, Any], ...] = ()
    kind: AnswerKind = "json"
    headers: tuple[str, ...] = ()  # names from SENT_HEADERS, beyond X-Request-Id (always sent)


class Route(msgspec.Struct, frozen=True, kw_only=True):
    method: Literal["GET", "POST", "PATCH", "DELETE", "PUT", "*"]
    path: str  # OpenAPI form: /v1/models/{model_id}
    operation_id: str
    tag: str
    summary: str
    auth: Auth
    answers: tuple[Answer, ...]
    errors: tuple[int, ...]
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Body | None = None
    reads: tuple[str, ...] = ()  # request headers from READ_HEADERS
    # The path as aiohttp registers it, when it differs (`{model_id:.+}`, a prefix for a sub-app).
    served_path: str | None = None
    # Not described in the document (still a route here, so the table accounts for every route).
    excluded: str | None = None

    @property
    def aiohttp_path(self) -> str:
        return self.served_path or self.path


def ok_json(status: int, description: str, type_: Any, headers: tuple[str, ...] = ()) -> Answer:
    return Answer(status=status, description=description, types=(("application/json", type_),), headers=headers)


def json_body(type_: Any, description: str = "") -> Body:
    return Body(media=(("application/json", type_),), description=description)


def path_id(name: str = "id", what: str = "") -> Param:
    return Param(name=name, where="path", required=True, description=what)


Limit = Annotated[int, msgspec.Meta(ge=1)]

# Headers the edge reads: name -> (type, description).
READ_HEADERS: Final = MappingProxyType({
    "X-Request-Id": (Annotated[str, msgspec.Meta(max_length=128)],
                     "Correlation id, echoed back (one is generated when absent or unusable)."),
    "x-aig-tag": (Annotated[str, msgspec.Meta(max_length=128)],
                  "Cost-attribution tag for this request; the sub-account's default_tag when absent."),
    "x-cache": (Literal["auto", "force", "skip"], "Response cache: auto (default), force, or skip."),
    "x-routing": (Literal["cost", "speed", "quality", "auto"],
                  "How model \"auto\" (or an omitted model) is chosen."),
    "x-aig-snapshot": (str, "\"off\" keeps this request out of the replay snapshot store."),
    "Idempotency-Key": (Annotated[str, msgspec.Meta(min_length=1, max_length=255)],
                        "The same key and body within 24 h answers the first response again (409 on another body)."),
    "traceparent": (str, "W3C trace context, carried to every service on the request's path."),
    "Range": (str, "A single byte range (bytes=a-b): the answer is a 206 with that slice."),
})

# Headers the edge sends: name -> (type, description).
SENT_HEADERS: Final = MappingProxyType({
    "X-Request-Id": (str, "The request's id (yours, or generated); look it up at /v1/generations."),
    "X-Model": (str, "The model the gateway dispatched to (percent-encoded when not plain ASCII)."),
    "X-Provider": (str, "The upstream provider that answered."),
    "X-Latency-Ms": (str, "Wall-clock latency of the upstream call, integer milliseconds."),
    "X-Cost-Cents": (str, "What this request cost, fractional US cents."),
    "X-Input-Units": (str, "Input units billed (tokens, images, seconds)."),
    "X-Output-Units": (str, "Output units billed."),
    "X-Cache-Status": (str, "hit or miss, and the cache type."),
    "Retry-After": (str, "Seconds to wait before retrying."),
    "Idempotent-Replayed": (str, "\"true\" when this answer is the stored answer of an earlier request."),
    "openai-poll-after-ms": (str, "How long the openai SDK's videos.poll() waits before polling again."),
    "Content-Disposition": (str, "The file name of a download."),
    "Content-Range": (str, "The slice a 206 answer holds."),
    "Accept-Ranges": (str, "bytes: downloads accept a Range header."),
})
INFERENCE_HEADERS: Final = ("X-Model", "X-Provider", "X-Latency-Ms", "X-Cost-Cents", "X-Input-Units",
                            "X-Output-Units", "X-Cache-Status")
DOWNLOAD_HEADERS: Final = ("Content-Disposition", "Accept-Ranges", "Content-Range")
INFERENCE_READS: Final = ("X-Request-Id", "x-aig-tag", "x-cache", "traceparent")

# Error statuses, named once. Every route can answer 400 (a header that is not UTF-8, for one).
# 503: a service behind the edge is not running or the bus is reconnecting; 504: it did not answer in time.
ERROR_DESCRIPTIONS: Final = MappingProxyType({
    400: "Invalid request: the message names the field (`param`).",
    401: "Missing, unknown, disabled or expired API key.",
    402: "Spend cap reached (sub-account) or prepaid balance exhausted.",
    403: "The key lacks the scope this route needs, or the signed URL is invalid or expired.",
    404: "Not found: unknown ids and another tenant's ids answer the same.",
    409: "Conflict: an Idempotency-Key reused with another body or still in flight, or a state that forbids it.",
    413: "The body is larger than the gateway accepts.",
    416: "The Range asked for is beyond the object.",
    429: "Rate limited: honour Retry-After.",
    502: "The provider failed (relayed as provider_error).",
    503: "A gateway service is unavailable for a moment: retry (Retry-After when known).",
    504: "No answer in time (timeout_error).",
})
BUS: Final = (503, 504)  # a route answered by a service over NATS
READ: Final = (400, 401, 403, *BUS)
READ_ONE: Final = (400, 401, 403, 404, *BUS)
WRITE: Final = (400, 401, 403, 413, *BUS)
WRITE_ONE: Final = (400, 401, 403, 404, 409, 413, *BUS)
# An admitted request: key, spend cap (402), rate limit (429), body, then the router (502/504).
INFERENCE: Final = (400, 401, 402, 403, 404, 413, 429, 502, 503, 504)
KEYLESS: Final = (400, 403, 404, 416)
