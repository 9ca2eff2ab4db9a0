"""Long-running generations (video, music, 3D) between the jobs service and the router.

The router owns every provider call, so a job is driven by four request/replies on
`subjects.INFER_LONGRUN`, each answered by one `LongRunStatus` (or a bus Failure):

- `submit`: start the generation at the provider chosen for `model`; the answer's `handle`
  says where it runs and is passed back on every later call.
- `poll`: ask the provider how far it got (`state`, `progress`).
- `fetch`: once `state` is completed, download the result(s) into the Object Store under
  `contracts.files.job_object_name(account, job_id, filename)`, meter the job (usage event
  with request id = job id, so a repeated fetch is billed once) and list the `outputs`.
- `cancel`: ask the provider to stop, where its API can; never billed.

Msgpack, like every inference message.
"""

from typing import Final, Literal

import msgspec

from libs.contracts.bus.inference import DispatchMeta, Failure, Principal
from libs.contracts.errors import ErrorBody

OP_SUBMIT: Final = "submit"
OP_POLL: Final = "poll"
OP_FETCH: Final = "fetch"
OP_CANCEL: Final = "cancel"
MODALITY_VIDEO: Final = "video"
MODALITY_MUSIC: Final = "music"
MODALITY_3D: Final = "3d"
MODALITIES: Final = (MODALITY_VIDEO, MODALITY_MUSIC, MODALITY_3D)
# The usage event's `operation` for each modality (what reports group by).
OPERATIONS: Final = {MODALITY_VIDEO: "video.generations", MODALITY_MUSIC: "audio.music",
                     MODALITY_3D: "3d.generations"}
State = Literal["queued", "processing", "completed", "failed", "cancelled"]


class LongRunHandle(msgspec.Struct, array_like=True, frozen=True):
    """Where a submitted generation runs; opaque to the jobs service."""

    provider: str  # provider slug
    model: str  # catalog id (what is billed)
    upstream_model: str
    upstream_id: str  # the provider's id: OpenAI video id, Gemini operation name, Replicate / fal request id
    extra: dict[str, str] = {}  # adapter-specific (e.g. fal's status/response URLs)


class LongRunRequest(msgspec.Struct, array_like=True, kw_only=True):
    op: str  # OP_*
    job_id: str
    principal: Principal
    modality: str = MODALITY_VIDEO
    model: str = ""  # catalog id, for submit ("" or "auto": the cheapest enabled model of the modality)
    body: bytes = b""  # submit: the client's JSON (AsyncJobRequest / OpenAI VideoCreate fields)
    handle: LongRunHandle | None = None  # poll, fetch, cancel
    tag: str | None = None
    traceparent: str | None = None


class JobOutput(msgspec.Struct, array_like=True):
    filename: str
    content_type: str
    bytes: int
    object_name: str  # in subjects.OBJ_FILES


class LongRunStatus(msgspec.Struct, array_like=True, kw_only=True):
    state: State
    handle: LongRunHandle | None = None
    progress: float | None = None  # 0..100, where the provider reports it
    error: ErrorBody | None = None  # state failed: the provider's reason
    outputs: list[JobOutput] = []  # fetch: what was stored
    meta: DispatchMeta | None = None  # fetch: model, provider, usage (seconds or assets) and cost
    # The provider's own suggestion for the next poll, in seconds (e.g. from Retry-After).
    poll_after_s: float | None = None


encode = msgspec.msgpack.Encoder().encode
decode_request = msgspec.msgpack.Decoder(LongRunRequest).decode
decode_status = msgspec.msgpack.Decoder(LongRunStatus).decode
_decode_failure = msgspec.msgpack.Decoder(Failure).decode


def decode_answer(payload: bytes) -> LongRunStatus | Failure:
    """The router's answer: a LongRunStatus, or a Failure (tagged "error", like every inference failure)."""
    try:
        return decode_status(payload)
    except msgspec.ValidationError:
        return _decode_failure(payload)
