"""OpenAI ``POST /v1/embeddings``: deterministic unit vectors derived from a hash of each input."""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import Any

from aiohttp import web

from tools.upstream_sim.common import (
    InvalidRequest,
    count_words,
    delay_ms,
    json_response,
    malformed_json_response,
)
from tools.upstream_sim.directives import Directives

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 8192
MAX_INPUTS = 2048


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def _inputs(raw: Any) -> list[tuple[bytes, int]]:
    """Normalise ``input`` into (hash key, token count) pairs."""
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw and _is_tokens(raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise InvalidRequest("'input' must be a non-empty string or array.", "input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"'input' may hold at most {MAX_INPUTS} items.", "input")
    out: list[tuple[bytes, int]] = []
    for item in items:
        if isinstance(item, str):
            out.append((b"s:" + item.encode(), count_words(item)))
        elif _is_tokens(item) and item:
            # Prefix keeps the string "1" and the token list [1] from colliding.
            out.append((b"t:" + ",".join(map(str, item)).encode(), len(item)))
        else:
            raise InvalidRequest("'input' items must be strings or non-empty arrays of integers.", "input")
    return out


def embed(key: bytes, dimensions: int) -> array:
    """A float32 unit vector that depends only on ``key`` and ``dimensions``."""
    raw = array("I", hashlib.shake_256(key).digest(4 * dimensions))
    values = [v / 2147483647.5 - 1.0 for v in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def _encode_vector(vec: array, fmt: str) -> Any:
    if fmt == "base64":
        # The SDK decodes base64 as little-endian float32.
        if sys.byteorder != "little":
            vec = array("f", vec)
            vec.byteswap()
        return base64.b64encode(vec.tobytes()).decode()
    return vec.tolist()


async def handle_embeddings(
    request: web.Request, payload: dict[str, Any], directives: Directives
) -> web.StreamResponse:
    inputs = _inputs(payload.get("input"))
    dimensions = payload.get("dimensions", DEFAULT_DIMENSIONS)
    if dimensions is None:
        dimensions = DEFAULT_DIMENSIONS
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise InvalidRequest(f"'dimensions' must be an integer between 1 and {MAX_DIMENSIONS}.", "dimensions")
    fmt = payload.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(embed(key, dimensions), fmt)}
        for i, (key, _) in enumerate(inputs)
    ]
    tokens = sum(count for _, count in inputs)
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
