"""Client surfaces other than OpenAI chat: the Anthropic Messages API (/v1/messages) and
the OpenAI Responses API (/v1/responses). Each translates its request into the
gateway's canonical chat format, and the chat answer (whole or streamed) back, so
either surface reaches every provider."""

from collections.abc import Callable

import msgspec

from libs.contracts.bus.inference import OP_MESSAGES, OP_RESPONSES
from services.router.surfaces import anthropic_messages, responses
from services.router.surfaces._chat import StreamConverter, SurfaceError

__all__ = ["StreamConverter", "Surface", "SurfaceError", "surface_for"]


class Surface(msgspec.Struct, frozen=True):
    chat_request: bytes
    answer: Callable[[bytes], bytes]  # chat.completion JSON -> the surface's answer
    stream: Callable[[], StreamConverter]  # chat chunks -> the surface's events


def surface_for(operation: str, body: bytes) -> Surface | None:
    """None for plain chat; raises SurfaceError for a request the surface cannot express."""
    if operation == OP_MESSAGES:
        return Surface(anthropic_messages.to_chat_request(body), anthropic_messages.from_chat_response,
                       anthropic_messages.MessagesStream)
    if operation == OP_RESPONSES:
        return Surface(responses.to_chat_request(body), lambda chat: responses.from_chat_response(chat, body),
                       lambda: responses.ResponsesStream(body))
    return None
