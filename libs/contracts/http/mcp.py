"""Arguments of the MCP tools that have no JSON body of their own (services/edge/mcp/).

The other tools take the HTTP API's request Structs as they are (chat.py, modalities.py,
jobs.py, ...). These describe what the read tools pass as path and query parameters;
`msgspec.json.schema` of each is the tool's input schema, so the descriptions below are
what an MCP client (and the model driving it) reads.
"""

from typing import Annotated

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Instant = Annotated[str, msgspec.Meta(max_length=64, description="Unix seconds or ISO 8601 (UTC unless it says).")]
MAX_SEARCH = 100


class JobRef(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[Id, msgspec.Meta(description="The job id (job_...), as generate_* or chat with webhook_url "
                                               "returned it.")]


class EvalRef(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[Id, msgspec.Meta(description="The eval id, as create_eval returned it.")]


class ModelsFilter(msgspec.Struct, forbid_unknown_fields=True):
    modality: Annotated[str, msgspec.Meta(
        description="text, image, audio-stt, audio-tts, video, music, 3d, embedding, rerank or moderation.",
    )] | None = None
    provider: Annotated[str, msgspec.Meta(max_length=100, description="A provider slug, e.g. openai.")] | None = None


class ModelSearch(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description=(
        "Words that must all appear in a model's id, provider, upstream name, modality or capabilities "
        "(case-insensitive), e.g. 'gpt mini' or 'vision'."))]
    modality: Annotated[str, msgspec.Meta(description="Only models of this modality (see list_models).")] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEARCH)] = 20


class UsageQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The query of GET /v1/usage/by-tag and /v1/usage/by-sub-account; the current month by default."""

    month: Annotated[str, msgspec.Meta(max_length=7, description="A calendar month, YYYY-MM.")] | None = None
    from_: Instant | None = msgspec.field(default=None, name="from")
    to: Instant | None = None
    bucket: Annotated[str, msgspec.Meta(description="hour, day or month: rows per period as well.")] | None = None
    model: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    provider: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    tag: Annotated[str, msgspec.Meta(max_length=300)] | None = None
