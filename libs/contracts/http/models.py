"""`/v1/models` bodies: OpenAI's model object plus the catalog's extensions."""

from typing import Literal

import msgspec


class Pricing(msgspec.Struct):
    """USD per million units (tokens for text models)."""

    input_per_mtok: float | None
    output_per_mtok: float | None


class ModelCard(msgspec.Struct):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""
    provider: str = ""
    upstream_model: str = ""
    modality: str = "text"
    context_window: int | None = None
    capabilities: list[str] = []
    pricing: Pricing | None = None
    priced: bool = True
    quality: int | None = None


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"
