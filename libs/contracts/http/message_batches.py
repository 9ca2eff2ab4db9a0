"""Anthropic's Message Batches API (`/v1/messages/batches`): the create body, the public
MessageBatch (anthropic/types/messages/message_batch.py) and the results lines.

A Message Batch is a batch (batches.py) of `/v1/messages` lines with another view:
its requests are stored as an input file in OpenAI's line format and run by the same
machinery; `results` is one JSONL object written when it ends.
"""

import re
import time
from typing import Annotated, Any, Final, Literal

import msgspec

MESSAGE_BATCH_ID_PREFIX: Final = "msgbatch_"
MAX_REQUESTS: Final = 100_000
CUSTOM_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
ProcessingStatus = Literal["in_progress", "canceling", "ended"]


class MessageBatchRequest(msgspec.Struct, kw_only=True):
    custom_id: str
    params: dict[str, Any]


class MessageBatchCreate(msgspec.Struct, kw_only=True):
    requests: Annotated[list[MessageBatchRequest], msgspec.Meta(min_length=1, max_length=MAX_REQUESTS)]


class MessageBatchCounts(msgspec.Struct, kw_only=True):
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


class MessageBatch(msgspec.Struct, kw_only=True):
    id: str
    type: Literal["message_batch"] = "message_batch"
    processing_status: ProcessingStatus
    request_counts: MessageBatchCounts
    created_at: str  # RFC 3339
    expires_at: str
    ended_at: str | None = None
    cancel_initiated_at: str | None = None
    archived_at: str | None = None
    results_url: str | None = None  # set once ended: where GET .../results answers


class MessageBatchList(msgspec.Struct, kw_only=True):
    data: list[MessageBatch]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class DeletedMessageBatch(msgspec.Struct, kw_only=True):
    id: str
    type: Literal["message_batch_deleted"] = "message_batch_deleted"


class ResultsLocation(msgspec.Struct, kw_only=True):
    """jobs -> edge: where an ended batch's results JSONL lives (the edge streams it)."""

    object_name: str


# Results lines: {custom_id, result: {type: succeeded, message} | {type: errored, error} | ...}
class ErrorObject(msgspec.Struct, kw_only=True):
    type: str
    message: str


class ErrorResponse(msgspec.Struct, kw_only=True):
    type: Literal["error"] = "error"
    error: ErrorObject


class Succeeded(msgspec.Struct, tag="succeeded", tag_field="type", kw_only=True):
    message: msgspec.Raw


class Errored(msgspec.Struct, tag="errored", tag_field="type", kw_only=True):
    error: ErrorResponse


class Canceled(msgspec.Struct, tag="canceled", tag_field="type"):
    pass


class Expired(msgspec.Struct, tag="expired", tag_field="type"):
    pass


class ResultLine(msgspec.Struct, kw_only=True):
    custom_id: str
    result: Succeeded | Errored | Canceled | Expired


# Anthropic's error types by HTTP status (anything else is an api_error).
ERROR_TYPES: Final = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                      403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                      429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}


def rfc3339(ts_s: int | None) -> str | None:
    if ts_s is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_s))


encode = msgspec.json.Encoder().encode
decode_create = msgspec.json.Decoder(MessageBatchCreate).decode
decode_results_location = msgspec.json.Decoder(ResultsLocation).decode
