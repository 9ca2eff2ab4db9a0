"""Decoding untrusted bodies once, with an OpenAI-shaped 400 naming the field."""

from typing import Any

import msgspec

from libs.contracts import errors
from services.edge.errors import GatewayError


def validate(decode: Any, body: bytes) -> Any:
    if not body:
        raise GatewayError(400, errors.INVALID_REQUEST, "Request body is empty; send a JSON object.")
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise GatewayError(400, errors.INVALID_REQUEST, f"Invalid request body: {exc}",
                           param=_param_of(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise GatewayError(400, errors.INVALID_REQUEST, f"Malformed JSON body: {exc}") from exc


def _param_of(message: str) -> str | None:
    """msgspec names the field as `$.path` or in backticks; pass it as OpenAI's `param`."""
    path = message.rsplit("`$.", 1)[1].rstrip("`") if " - at `$." in message else None
    if "missing required field `" in message:
        field = message.split("missing required field `", 1)[1].split("`", 1)[0]
        return f"{path}.{field}" if path else field
    return path


def bounded_int(raw: str, lowest: int, highest: int) -> int | None:
    """`raw` as an int when it is plain ASCII digits within [lowest, highest], else None.

    str.isdigit() alone admits superscripts and other scripts' digits that int() refuses,
    and a few thousand digits make int() raise: both were 500s."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(highest)):
        return None
    value = int(raw)
    return value if lowest <= value <= highest else None
