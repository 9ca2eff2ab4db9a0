"""OpenAI Responses request (`POST /v1/responses`) as the edge validates it.

Same policy as chat.py: strict where the gateway reads or translates a field
(model, input's outer shape, sampling bounds, max_output_tokens, text.format,
tool_choice's string values), loose dicts where OpenAI's shapes evolve quickly
(input items, tools); the translator (services/router/surfaces/responses.py)
refuses item and tool types it cannot map. Unknown fields are ignored.

`previous_response_id`, `conversation` and `background` are decoded so the edge
can refuse them by name: the gateway stores no responses to continue from or poll.
"""

from typing import Annotated, Any, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _Format(msgspec.Struct, tag_field="type"):
    pass


class FormatText(_Format, tag="text"):
    pass


class FormatJsonObject(_Format, tag="json_object"):
    pass


class FormatJsonSchema(_Format, tag="json_schema", kw_only=True):  # kw_only: required fields in a tagged union
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct):
    format: FormatText | FormatJsonObject | FormatJsonSchema | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(msgspec.Struct):
    model: NonEmpty
    # A string is one user message; a list holds messages and items (function_call, function_call_output, ...).
    input: NonEmpty | Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    # "none" | "auto" | "required", or an object ({"type": "function", "name": ...}, hosted tool types).
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stream: bool | None = None
    text: TextConfig | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    metadata: Annotated[dict[str, str], msgspec.Meta(max_length=16)] | None = None
    store: bool | None = None
    user: str | None = None
    # {"effort": ..., "summary": ...}: loose, the effort values grow with each model family.
    reasoning: dict[str, Any] | None = None
