"""Public bodies of /v1/evals: run a dataset across candidate models, score them,
and route `model: "eval:<id>"` to the winner.

The contract's fields are `name`, `candidate_models`, `dataset` and `metric`.
Our extensions: `scorer` (how quality is judged; exact match by default),
`params` (sampling parameters sent with every request, e.g. temperature) and
`dataset_file_id` (an uploaded JSONL file of EvalItem, one per line, instead of `dataset`).
"""

from typing import Annotated, Any, Literal

import msgspec

Metric = Literal["quality", "cost", "speed"]
ScorerType = Literal["exact", "contains", "regex", "json_schema", "judge"]
EvalStatus = Literal["queued", "running", "completed", "failed"]
MAX_ITEMS = 500
MAX_MODELS = 10
MAX_RUNS = 2_000  # items x models: keeps a run, and its record, bounded
OUTPUT_PREVIEW = 500  # characters of each output kept in the record


class EvalItem(msgspec.Struct, kw_only=True):
    """One dataset row: a prompt (`input`) or a whole conversation (`messages`), and
    what a good answer looks like (`expected`, for the exact/contains/regex scorers)."""

    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    expected: str | None = None


class Scorer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: ScorerType = "exact"
    pattern: str | None = None  # regex: the output must match (re.search)
    json_schema: dict[str, Any] | None = None  # json_schema: the output must be JSON valid against it
    model: str | None = None  # judge: the model that grades each answer
    criteria: str | None = None  # judge: what a good answer is, in words
    case_sensitive: bool = False  # exact / contains


class EvalCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    candidate_models: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=300)]],
                                msgspec.Meta(min_length=1, max_length=MAX_MODELS)]
    dataset: Annotated[list[EvalItem], msgspec.Meta(max_length=MAX_ITEMS)] = []
    metric: Metric
    dataset_file_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    scorer: Scorer | None = None
    params: dict[str, Any] = {}


class ModelResult(msgspec.Struct, kw_only=True):
    model: str
    requests: int
    errors: int
    score: float | None  # quality: mean item score, 0..1 (a failed request scores 0)
    cost_micros: int
    cost_cents: float
    mean_cost_cents: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None


class ItemResult(msgspec.Struct, kw_only=True):
    index: int
    model: str
    status: int
    score: float | None = None
    output: str = ""  # the first OUTPUT_PREVIEW characters
    cost_micros: int = 0
    latency_ms: float = 0.0
    error: str | None = None


class EvalView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    status: EvalStatus
    metric: Metric
    candidate_models: list[str]
    dataset_size: int
    created: int  # unix seconds
    scorer: Scorer | None = None
    started: int | None = None
    completed: int | None = None
    sub_account_id: str | None = None
    winner_model: str | None = None
    results: list[ModelResult] = []
    items: list[ItemResult] = []
    error: str | None = None
    object: str = "eval"


encode = msgspec.json.Encoder().encode
decode_view = msgspec.json.Decoder(EvalView).decode
decode_item = msgspec.json.Decoder(EvalItem).decode
