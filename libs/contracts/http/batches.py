"""OpenAI's Batch API (`/v1/batches`): the create body, the public Batch object, the
record kept in KV `sb_batches`, and the lines of input, output and error files.

The public object is OpenAI's Batch exactly (openai/types/batch.py), plus the
contract's `request_counts.processing`. A Message Batch (message_batches.py) runs on
the same record: `surface` says which API created it and which view it answers with.
"""

from typing import Annotated, Any, Final, Literal

import msgspec

from libs.contracts.bus.inference import Principal

# Jobs-API operations (libs/contracts/bus/jobs.py JobsRequest.op) for both batch APIs.
OP_BATCH_CREATE: Final = "batch.create"
OP_BATCH_LIST: Final = "batch.list"
OP_BATCH_GET: Final = "batch.get"
OP_BATCH_CANCEL: Final = "batch.cancel"
OP_MESSAGE_BATCH_CREATE: Final = "message_batch.create"
OP_MESSAGE_BATCH_LIST: Final = "message_batch.list"
OP_MESSAGE_BATCH_GET: Final = "message_batch.get"
OP_MESSAGE_BATCH_CANCEL: Final = "message_batch.cancel"
OP_MESSAGE_BATCH_RESULTS: Final = "message_batch.results"
OP_MESSAGE_BATCH_DELETE: Final = "message_batch.delete"

BATCH_ID_PREFIX: Final = "batch_"
MAX_LINES: Final = 50_000
MAX_CUSTOM_ID: Final = 512
MAX_METADATA: Final = 16
MAX_LIST: Final = 100
DEFAULT_LIST: Final = 20
WINDOW_S: Final = 24 * 3600  # SWITCHBOARD_BATCH_WINDOW_S overrides it (tests)

Endpoint = Literal["/v1/chat/completions", "/v1/embeddings", "/v1/responses"]
# `/v1/messages` is only reachable through the Message Batches API.
ENDPOINTS: Final = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
MESSAGES_ENDPOINT: Final = "/v1/messages"
Status = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
                 "cancelled"]
TERMINAL: Final = frozenset({"failed", "completed", "expired", "cancelled"})

# Line error codes (an error line's `error.code`, a failed batch's `errors.data[].code`).
CODE_EXPIRED: Final = "batch_expired"
CODE_CANCELLED: Final = "batch_cancelled"
CODE_BUDGET: Final = "budget_exceeded"
CODE_INVALID_JSON: Final = "invalid_json_line"
CODE_MISSING_CUSTOM_ID: Final = "missing_custom_id"
CODE_DUPLICATE_CUSTOM_ID: Final = "duplicate_custom_id"
CODE_INVALID_METHOD: Final = "invalid_method"
CODE_INVALID_URL: Final = "invalid_url"
CODE_INVALID_BODY: Final = "invalid_body"
CODE_MISSING_MODEL: Final = "missing_model"
CODE_TOO_MANY_LINES: Final = "too_many_requests"
CODE_EMPTY_FILE: Final = "empty_file"
CODE_FILE_UNREADABLE: Final = "invalid_file"
CODE_BATCH_FAILED: Final = "batch_failed"

MetaKey = Annotated[str, msgspec.Meta(max_length=64)]
MetaValue = Annotated[str, msgspec.Meta(max_length=512)]


class OutputExpiresAfter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    anchor: Literal["created_at"]
    seconds: Annotated[int, msgspec.Meta(ge=3600, le=2_592_000)]


class BatchCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    input_file_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    endpoint: Endpoint
    completion_window: Literal["24h"] = "24h"
    metadata: dict[MetaKey, MetaValue] | None = None
    output_expires_after: OutputExpiresAfter | None = None


class ListQuery(msgspec.Struct, kw_only=True):
    """A list call's cursor (OpenAI's `after`; Anthropic's `after_id` / `before_id`) and page size."""

    after: str | None = None
    before: str | None = None
    limit: int = DEFAULT_LIST


class BatchError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    line: int | None = None  # 1-based, as OpenAI reports it
    param: str | None = None


class BatchErrors(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[BatchError]


class RequestCounts(msgspec.Struct, kw_only=True):
    total: int = 0
    completed: int = 0
    failed: int = 0
    processing: int = 0  # the contract's field: lines not finished yet


class TokenDetailsIn(msgspec.Struct):
    cached_tokens: int = 0


class TokenDetailsOut(msgspec.Struct):
    reasoning_tokens: int = 0


class BatchUsage(msgspec.Struct, kw_only=True):
    input_tokens: int = 0
    input_tokens_details: TokenDetailsIn = msgspec.field(default_factory=TokenDetailsIn)
    output_tokens: int = 0
    output_tokens_details: TokenDetailsOut = msgspec.field(default_factory=TokenDetailsOut)
    total_tokens: int = 0


class Batch(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="object", tag="batch"):
    """The public Batch (OpenAI's). Unset fields are left out, not sent as null: OpenAI's schema
    does not let them be null (typed clients generated from it reject a null timestamp). `object`
    is the tag, so it is always written; `completion_window` has no default for the same reason."""

    id: str
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: Status
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = msgspec.field(default_factory=RequestCounts)
    usage: BatchUsage = msgspec.field(default_factory=BatchUsage)
    metadata: dict[str, str] | None = None
    model: str | None = None


class LineCounts(msgspec.Struct, kw_only=True):
    """Finished lines by outcome (Anthropic's four; OpenAI's `failed` is all but succeeded)."""

    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.errored + self.canceled + self.expired


class BatchRecord(msgspec.Struct, kw_only=True):
    """KV `sb_batches`, key `<account>.<batch id>`: the public Batch and what only we need."""

    batch: Batch
    account_id: str
    subaccount_id: str | None = None
    key_id: str = ""
    tag: str | None = None
    surface: Literal["openai", "anthropic"] = "openai"
    input_object: str = ""  # the Object Store name of the input lines
    results_object: str | None = None  # Anthropic: the results JSONL, once ended
    output_expires_s: int | None = None  # output_expires_after.seconds
    counts: LineCounts = msgspec.field(default_factory=LineCounts)
    cost_micros: int = 0

    def principal(self) -> Principal:
        """Who the batch's lines run (and are billed) as: its creator."""
        return Principal(self.account_id, self.key_id, self.subaccount_id)


class BatchWork(msgspec.Struct, array_like=True):
    """One batch to run, on JOBS_WORK_BATCH (Nats-Msg-Id = batch id); the rest is in its record."""

    batch_id: str
    account_id: str


class BatchList(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="object", tag="list"):
    """OpenAI's page of batches: an empty page has no first_id / last_id (not nullable there)."""

    data: list[Batch]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class InputLine(msgspec.Struct, kw_only=True):
    """One line of an input file, as loosely as it can be read: each field is then checked
    by hand so a bad line is reported by name and line number."""

    custom_id: Any = None
    method: Any = None
    url: Any = None
    body: Any = None


class LineResult(msgspec.Struct, kw_only=True, array_like=True):
    """KV `sb_batch_lines`, key `<batch id>.<line index>`: a finished line, written before the
    batch's message is acknowledged so a redelivered batch runs each line once."""

    index: int
    custom_id: str
    outcome: Literal["succeeded", "errored", "canceled", "expired"]
    request_id: str
    status_code: int = 0  # 0: no HTTP answer (expired, cancelled)
    body: bytes = b""  # the answer's JSON (an error envelope when it failed)
    error_code: str | None = None
    error_message: str | None = None
    cost_micros: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


class LineResponse(msgspec.Struct, kw_only=True):
    status_code: int
    request_id: str
    body: msgspec.Raw


class LineError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class OutputLine(msgspec.Struct, kw_only=True):
    """A line of the output or error file (OpenAI's format)."""

    id: str
    custom_id: str
    response: LineResponse | None
    error: LineError | None


encode = msgspec.json.Encoder().encode
decode_create = msgspec.json.Decoder(BatchCreate).decode
decode_record = msgspec.json.Decoder(BatchRecord).decode
decode_query = msgspec.json.Decoder(ListQuery).decode
decode_input_line = msgspec.json.Decoder(InputLine).decode
encode_line = msgspec.msgpack.Encoder().encode
decode_line = msgspec.msgpack.Decoder(LineResult).decode
decode_work = msgspec.msgpack.Decoder(BatchWork).decode
encode_work = msgspec.msgpack.Encoder().encode
