"""Async jobs: video, music and 3D generations and chat completions with `webhook_url`.

The public shapes (AsyncJobRequest, JobAccepted, Job, OpenAI's Video), the record the
jobs service keeps in KV `sb_jobs` (`<account>.<job id>`, JobRecord) and the edge ->
jobs call bodies (JobCreate, JobQuery). One record serves every surface: a job made
with `POST /v1/videos` reads as a Job at `/v1/jobs/{id}` and as a Video at
`/v1/videos/{id}`.
"""

import re
import secrets
from typing import Annotated, Any, Final, Literal

import msgspec

from libs.contracts.bus.inference import Principal
from libs.contracts.bus.longrun import JobOutput, LongRunHandle

JOB_ID_PREFIX: Final = "job_"
MODALITY_CHAT: Final = "chat"
SURFACE_JOB: Final = "job"  # /v1/jobs (and the contract's create endpoints)
SURFACE_VIDEO: Final = "video"  # OpenAI's /v1/videos
SURFACE_MUSIC: Final = "music"  # AI Stats' /v1/music/generate
SURFACES: Final = (SURFACE_JOB, SURFACE_VIDEO, SURFACE_MUSIC)
Status = Literal["queued", "processing", "completed", "failed", "cancelled"]
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
# Where a job is inside its status: the steps a cancel must not race (bus/longrun.py).
Stage = Literal["", "submitting", "fetching"]
MAX_PROMPT: Final = 32_000
MAX_LIST: Final = 100
DEFAULT_LIST: Final = 20
RESULT_JSON: Final = "result.json"  # a chat job's completion, as a job result file
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)

Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PROMPT)]
Url = Annotated[str, msgspec.Meta(max_length=4096)]


def new_job_id() -> str:
    return JOB_ID_PREFIX + secrets.token_hex(12)


def valid_webhook_url(url: str) -> bool:
    """http(s) with a host; the webhooks service re-checks the address (SSRF) at delivery."""
    return _URL.fullmatch(url) is not None


class AsyncJobRequest(msgspec.Struct, kw_only=True):
    """POST /v1/videos/generations, /v1/audio/music, /v1/3d/generations, /v1/music/generate."""

    prompt: Prompt
    model: str | None = None  # None or "auto": the cheapest enabled model of the modality
    duration: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None  # seconds
    aspect_ratio: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    resolution: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    image_url: Url | None = None
    webhook_url: Url | None = None
    negative_prompt: Annotated[str, msgspec.Meta(max_length=MAX_PROMPT)] | None = None
    seed: int | None = None


class VideoCreate(msgspec.Struct, kw_only=True):
    """OpenAI's POST /v1/videos form, as the edge forwards it (an uploaded input_reference
    becomes a data: URL in `image_url`)."""

    prompt: Prompt
    model: str | None = None
    seconds: Literal["4", "8", "12"] | None = None
    size: Literal["720x1280", "1280x720", "1024x1792", "1792x1024"] | None = None
    image_url: Url | None = None


class JobAccepted(msgspec.Struct):
    id: str
    object: Literal["job"] = "job"
    status: Literal["queued"] = "queued"


class JobError(msgspec.Struct):
    message: str
    code: str  # e.g. "provider_error", "cancelled", "deadline_exceeded"


class ResultFile(msgspec.Struct):
    filename: str
    url: str  # GET /v1/files/jobs/{job_id}/{filename}
    content_type: str
    bytes: int


class GenerationResult(msgspec.Struct, kw_only=True):
    """A finished generation's `result`."""

    files: list[ResultFile]
    duration: float | None = None  # seconds of media produced, where the provider says
    usage: dict[str, int] = {}  # input_units / output_units as billed
    cost_micros: int = 0
    cost_cents: float = 0.0


class Job(msgspec.Struct, kw_only=True, omit_defaults=False):
    """GET /v1/jobs/{id}; also the `data` of job.completed / job.failed events."""

    id: str
    object: Literal["job"] = "job"
    status: Status
    modality: str
    model: str
    created_at: int
    updated_at: int
    progress: float | None = None
    result_url: str | None = None
    result: Any = None  # when completed: chat, the completion JSON; generations, a GenerationResult
    error: JobError | None = None
    attempts: int = 0
    webhook_url: str | None = None
    webhook_delivered: bool | None = None  # None while pending, or without webhook_url
    tag: str | None = None
    sub_account_id: str | None = None


class Video(msgspec.Struct, kw_only=True, omit_defaults=False):
    """OpenAI's Video object, over the same job."""

    id: str
    object: Literal["video"] = "video"
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    model: str
    prompt: str | None = None
    seconds: str
    size: str
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    error: JobError | None = None
    remixed_from_video_id: str | None = None


class CursorList(msgspec.Struct, kw_only=True):
    """OpenAI's cursor page (`after`, `limit`, `order`): GET /v1/videos and GET /v1/jobs."""

    data: list[Any]
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VideoDeleted(msgspec.Struct):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class JobRecord(msgspec.Struct, kw_only=True):
    """KV `sb_jobs`, key `<account>.<job id>`. The files service reads `subaccount_id` to
    decide who may download `/v1/files/jobs/{id}/...`: keep that field's name."""

    id: str
    account_id: str
    subaccount_id: str | None = None
    principal: Principal
    modality: str  # bus/longrun.py MODALITY_* or MODALITY_CHAT
    surface: str = SURFACE_JOB  # how it was created: decides nothing but the create answer
    model: str  # what was asked for ("" = auto); `handle.model` once the router chose
    body: bytes  # what goes to the router: AsyncJobRequest / VideoCreate JSON, or the chat body
    status: Status = "queued"
    stage: Stage = ""
    handle: LongRunHandle | None = None
    attempts: int = 0  # router calls made for this job's steps, retries included
    errors_in_row: int = 0  # consecutive transient router errors: too many and the job fails
    polls: int = 0  # polls made while processing: the interval grows with them
    progress: float | None = None
    outputs: list[JobOutput] = []
    duration_s: float | None = None
    input_units: int = 0
    output_units: int = 0
    cost_micros: int = 0
    result: dict[str, Any] | None = None  # chat: the completion JSON
    error: JobError | None = None
    webhook_url: str | None = None
    base_url: str = ""  # the public /v1 URL the job was created through: result URLs in events
    tag: str | None = None
    traceparent: str | None = None
    created_at: int
    updated_at: int
    completed_at: int | None = None


class JobCreate(msgspec.Struct, array_like=True, kw_only=True):
    """Edge -> jobs (op job.create): a validated create, in bus/jobs.py JobsRequest.body."""

    modality: str
    surface: str
    model: str
    body: bytes  # forwarded to the router as is
    webhook_url: str | None = None
    base_url: str = ""


class JobQuery(msgspec.Struct, array_like=True, kw_only=True):
    """Edge -> jobs (job.get / job.list / job.cancel / job.delete), in JobsRequest.body."""

    surface: str = SURFACE_JOB  # which shape to answer with
    base_url: str = ""  # the public /v1 URL of this request: result URLs point there
    modality: str | None = None  # list: only this modality
    after: str | None = None
    limit: int = DEFAULT_LIST
    order: Literal["asc", "desc"] = "desc"


encode = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(JobRecord).decode
decode_job = msgspec.json.Decoder(Job).decode
encode_call = msgspec.msgpack.Encoder().encode
decode_create = msgspec.msgpack.Decoder(JobCreate).decode
decode_query = msgspec.msgpack.Decoder(JobQuery).decode
