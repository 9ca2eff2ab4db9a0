"""Embeddings request as the edge validates it (see chat.py for the policy)."""

from typing import Annotated, Literal

import msgspec


class EmbeddingsRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    # msgspec allows one array type per union, so token-id inputs (list[int] and
    # list[list[int]]) share the list branch; the provider checks the mix.
    input: Annotated[str, msgspec.Meta(min_length=1)] | Annotated[
        list[str | int | list[int]], msgspec.Meta(min_length=1)
    ]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None
