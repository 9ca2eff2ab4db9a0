"""Public bodies of /v1/replays: re-run a past request on another model and compare.

`shadow: true` runs the replay in the background (202, poll GET /v1/replays/{id});
otherwise the answer is the finished comparison.
"""

from typing import Annotated, Literal

import msgspec

ReplayStatus = Literal["queued", "running", "completed", "failed"]


class ReplayCreate(msgspec.Struct, forbid_unknown_fields=True):
    source_request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    target_model: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    shadow: bool = False


class ReplaySide(msgspec.Struct, kw_only=True):
    """One run of the request: the original (source) or the replay (target)."""

    request_id: str
    model: str
    provider: str | None = None
    status: int = 200
    output: str = ""  # the assistant's text; tool calls as their JSON
    finish_reason: str | None = None
    input_units: int = 0
    output_units: int = 0
    cost_micros: int = 0
    cost_cents: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None


class ReplayDiff(msgspec.Struct, kw_only=True):
    cost_delta_cents: float  # target minus source
    cost_ratio: float | None  # target / source; None when the source cost nothing
    latency_delta_ms: float  # target minus source
    output_identical: bool
    output_similarity: float  # 0..1, difflib's ratio over the two outputs
    output_diff: str  # unified diff, source -> target


class ReplayView(msgspec.Struct, kw_only=True):
    id: str
    status: ReplayStatus
    source_request_id: str
    target_model: str
    shadow: bool
    created: int  # unix seconds
    completed: int | None = None
    sub_account_id: str | None = None
    source: ReplaySide | None = None
    target: ReplaySide | None = None
    diff: ReplayDiff | None = None
    error: str | None = None
    object: str = "replay"


encode = msgspec.json.Encoder().encode
decode_view = msgspec.json.Decoder(ReplayView).decode
