"""The HTTP API's answer as an MCP tool result.

JSON comes back as text (and as structuredContent when it is an object); audio as audio
content; images the API returned inline (`b64_json`) as image content, with the base64
left out of the text so it is not sent twice. An HTTP error is a result with isError and
the gateway's own message, never a protocol error: the model driving the client reads it.
"""

import base64
from typing import Any

import mcp_types as types
import msgspec

from services.edge.mcp.tools import ApiAnswer

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _image_type(b64: str) -> str:
    try:
        head = base64.b64decode(b64[:16] + "=" * (-len(b64[:16]) % 4))
    except ValueError:
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "image/png")


def _images(payload: dict[str, Any]) -> list[types.ImageContent]:
    """Take each `data[i].b64_json` out of an images answer, as image content."""
    found: list[types.ImageContent] = []
    for index, item in enumerate(payload.get("data") or []):
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            data = item.pop("b64_json")
            item["b64_json"] = f"<image content {index + 1}>"
            found.append(types.ImageContent(type="image", data=data, mime_type=_image_type(data)))
    return found


def _error_text(answer: ApiAnswer, payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"{answer.status} {error.get('type') or 'error'}: {error['message']}"
    return f"{answer.status}: {answer.body[:500].decode('utf-8', 'replace')}"


def _binary(answer: ApiAnswer) -> types.CallToolResult:
    data = base64.b64encode(answer.body).decode()
    kind = answer.content_type
    described = types.TextContent(type="text", text=f"{kind}, {len(answer.body)} bytes")
    if kind.startswith("audio/"):
        return types.CallToolResult(content=[types.AudioContent(type="audio", data=data, mime_type=kind), described])
    if kind.startswith("image/"):
        return types.CallToolResult(content=[types.ImageContent(type="image", data=data, mime_type=kind), described])
    return types.CallToolResult(content=[types.TextContent(type="text", text=data), described])


def tool_result(answer: ApiAnswer) -> types.CallToolResult:
    failed = answer.status >= 400
    if not failed and answer.content_type.startswith(("audio/", "image/", "application/octet-stream")):
        return _binary(answer)
    if answer.content_type != "application/json":  # e.g. a transcription asked for as text, srt or vtt
        text = answer.body.decode("utf-8", "replace")
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=failed)
    try:
        payload = msgspec.json.decode(answer.body)
    except msgspec.DecodeError:
        payload = None
    if failed:
        structured = payload if isinstance(payload, dict) else None
        return types.CallToolResult(content=[types.TextContent(type="text", text=_error_text(answer, payload))],
                                    structured_content=structured, is_error=True)
    if not isinstance(payload, dict):
        return types.CallToolResult(content=[types.TextContent(type="text", text=answer.body.decode("utf-8",
                                                                                                     "replace"))])
    images = _images(payload)
    text = msgspec.json.encode(payload).decode() if images else answer.body.decode()
    return types.CallToolResult(content=[types.TextContent(type="text", text=text), *images],
                                structured_content=payload)


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
