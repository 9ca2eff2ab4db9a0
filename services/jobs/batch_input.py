"""A batch's input lines, streamed from the Object Store and checked one by one.

The whole file is validated before any line runs (OpenAI's rule): bad JSON, a missing
or repeated custom_id, a method other than POST, a url other than the batch's endpoint,
a body that is not an object or names no model, too many lines. Each problem is reported
with its 1-based line number; the batch then fails without spending anything. Blank
lines are skipped (a trailing newline is not a request) but still count for numbering.
"""

from collections.abc import AsyncIterator
from typing import NamedTuple

import msgspec

from libs.contracts.bus.inference import OP_CHAT, OP_EMBEDDINGS, OP_MESSAGES, OP_RESPONSES
from libs.contracts.http import batches as http
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from libs.contracts.http.messages import MessagesRequest
from libs.contracts.http.responses import ResponsesRequest
from services.jobs.jsonl import numbered

MAX_REPORTED_ERRORS = 100  # a file bad on every line reports its first problems, not 50,000
OPERATIONS: dict[str, str] = {"/v1/chat/completions": OP_CHAT, "/v1/embeddings": OP_EMBEDDINGS,
                              "/v1/responses": OP_RESPONSES, http.MESSAGES_ENDPOINT: OP_MESSAGES}
# What the edge would decode each endpoint's body with: a line it would refuse errors alone.
_SCHEMAS = {"/v1/chat/completions": msgspec.json.Decoder(ChatCompletionRequest).decode,
            "/v1/embeddings": msgspec.json.Decoder(EmbeddingsRequest).decode,
            "/v1/responses": msgspec.json.Decoder(ResponsesRequest).decode,
            http.MESSAGES_ENDPOINT: msgspec.json.Decoder(MessagesRequest).decode}
_STREAM_FIELDS = ("stream", "stream_options")  # a batch line is answered whole


class Line(NamedTuple):
    index: int  # 0-based among the requests
    line_no: int  # 1-based in the file
    custom_id: str
    model: str
    body: bytes  # the request body, re-encoded without stream fields


class Checked(msgspec.Struct, kw_only=True):
    """The outcome of validating a whole file."""

    custom_ids: list[str] = []
    errors: list[http.BatchError] = []
    models: set[str] = set()
    error_count: int = 0

    def fail(self, error: http.BatchError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)


def parse(raw: bytes, index: int, line_no: int, endpoint: str) -> Line | http.BatchError:
    """One non-blank line as a request for `endpoint`, or what is wrong with it."""
    def bad(code: str, message: str, param: str | None = None) -> http.BatchError:
        return http.BatchError(code=code, message=message, line=line_no, param=param)

    try:
        item = http.decode_input_line(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return bad(http.CODE_INVALID_JSON, "This line is not a JSON object.")
    if not isinstance(item.custom_id, str) or not item.custom_id:
        return bad(http.CODE_MISSING_CUSTOM_ID, "Each line needs a non-empty string custom_id.", "custom_id")
    if len(item.custom_id) > http.MAX_CUSTOM_ID:
        return bad(http.CODE_MISSING_CUSTOM_ID, f"custom_id is longer than {http.MAX_CUSTOM_ID} characters.",
                   "custom_id")
    if item.method != "POST":
        return bad(http.CODE_INVALID_METHOD, "method must be POST.", "method")
    if item.url != endpoint:
        return bad(http.CODE_INVALID_URL, f"url must be the batch's endpoint {endpoint}, got {item.url!r}.", "url")
    if not isinstance(item.body, dict):
        return bad(http.CODE_INVALID_BODY, "body must be a JSON object.", "body")
    model = item.body.get("model")
    if not isinstance(model, str) or not model:
        return bad(http.CODE_MISSING_MODEL, "body.model must be a non-empty string.", "body.model")
    body = {k: v for k, v in item.body.items() if k not in _STREAM_FIELDS}
    return Line(index, line_no, item.custom_id, model, msgspec.json.encode(body))


async def check(chunks: AsyncIterator[bytes], endpoint: str) -> Checked:
    checked = Checked()
    seen: set[str] = set()
    async for line_no, raw in numbered(chunks):
        index = len(checked.custom_ids)
        if index >= http.MAX_LINES:
            checked.fail(http.BatchError(code=http.CODE_TOO_MANY_LINES, line=line_no,
                                         message=f"A batch holds at most {http.MAX_LINES} requests."))
            break
        parsed = parse(raw, index, line_no, endpoint)
        if isinstance(parsed, http.BatchError):
            checked.fail(parsed)
            checked.custom_ids.append("")
            continue
        if parsed.custom_id in seen:
            checked.fail(http.BatchError(code=http.CODE_DUPLICATE_CUSTOM_ID, line=line_no, param="custom_id",
                                         message=f"custom_id {parsed.custom_id!r} appears more than once."))
        seen.add(parsed.custom_id)
        checked.custom_ids.append(parsed.custom_id)
        if len(checked.models) < 2:
            checked.models.add(parsed.model)
    if not checked.custom_ids and not checked.errors:
        checked.fail(http.BatchError(code=http.CODE_EMPTY_FILE, message="The input file holds no requests."))
    return checked


async def lines(chunks: AsyncIterator[bytes], endpoint: str) -> AsyncIterator[Line]:
    """The requests of a file that passed `check`."""
    index = 0
    async for line_no, raw in numbered(chunks):
        parsed = parse(raw, index, line_no, endpoint)
        if isinstance(parsed, http.BatchError):  # the file changed since it was checked
            raise ValueError(f"line {line_no}: {parsed.message}")
        yield parsed
        index += 1


def schema_error(endpoint: str, body: bytes) -> str | None:
    """Why the edge would refuse this body on `endpoint` (None: it would accept it)."""
    try:
        _SCHEMAS[endpoint](body)
    except msgspec.ValidationError as exc:
        return f"Invalid request body: {exc}"
    return None
