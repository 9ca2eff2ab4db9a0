"""Chat completions request as the edge validates it.

The edge decodes untrusted bodies once with these Structs to reject bad input
with a message naming the field; it then forwards the client's original bytes,
so every field the OpenAI API accepts (known here or not) reaches the provider
untouched. Only fields the gateway reads or must bound are typed strictly;
shapes that evolve quickly upstream (content parts, tools) stay loose.
"""

from typing import Annotated, Any, Literal

import msgspec

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatMessage(msgspec.Struct):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ResponseFormat(msgspec.Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


AUTO_MODEL = "auto"


class ChatCompletionRequest(msgspec.Struct):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    # Omitted or "auto": the router picks by x-routing (cost | speed | quality | auto).
    model: Annotated[str, msgspec.Meta(min_length=1)] = AUTO_MODEL
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    max_tokens: PosInt | None = None
    max_completion_tokens: PosInt | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    webhook_url: str | None = None
    # OpenRouter-style fallbacks: tried in order when `model` fails (5xx, 429, timeout).
    models: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(max_length=10)] | None = None
