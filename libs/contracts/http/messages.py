"""Anthropic Messages request (`POST /v1/messages`) as the edge validates it.

Same policy as chat.py: decode the untrusted body once to refuse bad input with a
message naming the field. What the gateway reads or translates field by field
(model, max_tokens, roles, tool_choice, sampling bounds) is typed strictly, with
Anthropic's own bounds; content blocks, system blocks and tool definitions stay
loose dicts because Anthropic adds block and tool types often and the translator
(services/router/surfaces/anthropic_messages.py) refuses the ones it cannot map
with a precise message. Unknown fields are ignored here so new Anthropic fields
do not break clients; the translator drops what it has no mapping for (listed in
its docstring).
"""

from typing import Annotated, Any, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]


class AnthropicMessage(msgspec.Struct):
    role: Literal["user", "assistant"]
    # A string, or content blocks: text, image, document, tool_use, tool_result, thinking, ...
    content: str | list[dict[str, Any]]


class _ToolChoice(msgspec.Struct, tag_field="type"):
    # Anthropic's flag; the translator maps it to OpenAI's parallel_tool_calls = false.
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAuto(_ToolChoice, tag="auto"):
    pass


class ToolChoiceAny(_ToolChoice, tag="any"):
    pass


class ToolChoiceTool(_ToolChoice, tag="tool", kw_only=True):  # kw_only: a required field after a default
    name: NonEmpty


class ToolChoiceNone(_ToolChoice, tag="none"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Metadata(msgspec.Struct):
    user_id: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class MessagesRequest(msgspec.Struct):
    model: NonEmpty
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[AnthropicMessage], msgspec.Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    stream: bool | None = None
    metadata: Metadata | None = None


def anthropic_error_type(status: int) -> str:
    """The `error.type` Anthropic's SDK expects for an HTTP status (its errors carry both)."""
    return {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
            403: "permission_error", 404: "not_found_error", 413: "request_too_large",
            429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}.get(
        status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_json(status: int, message: str, request_id: str | None = None) -> bytes:
    """Anthropic's error envelope, as the `anthropic` SDK reads it from a body or an `error` event."""
    error: dict[str, object] = {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}
    if request_id is not None:
        error["request_id"] = request_id
    return msgspec.json.encode(error)
