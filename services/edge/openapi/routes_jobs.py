"""Route table: async jobs (the contract's generations, OpenAI's /v1/videos, AI Stats'
/v1/music/generate, /v1/jobs), evals, replays, and both batch APIs
(services/edge/async_jobs.py, jobs_api.py, batches_api.py)."""

from typing import Annotated, Any, Final, Literal

import msgspec

from libs.contracts.bus import longrun
from libs.contracts.http import batches, jobs, lists
from libs.contracts.http import message_batches as anthropic
from libs.contracts.http.evals import EvalCreate, EvalView
from libs.contracts.http.replays import ReplayCreate, ReplayView
from services.edge.openapi.table import (
    BUS,
    DOWNLOAD_HEADERS,
    READ,
    READ_ONE,
    Answer,
    Body,
    Param,
    Route,
    json_body,
    ok_json,
    path_id,
)

# Creating paid work: admitted like a request (402 cap, 429 rate limit), Idempotency-Key (409).
CREATE: Final = (400, 401, 402, 403, 404, 409, 413, 429, *BUS)
_CREATE_READS = ("X-Request-Id", "x-aig-tag", "Idempotency-Key", "traceparent")


def _cursor_params(most: int) -> tuple[Param, ...]:
    return (Param(name="after", where="query", description="The last id of the previous page."),
            Param(name="limit", where="query", type=Annotated[int, msgspec.Meta(ge=1, le=most)],
                  description=f"Page size, 1 to {most}."))


_JOB_PAGE = (*_cursor_params(jobs.MAX_LIST),
             Param(name="order", where="query", type=Literal["asc", "desc"], description="By creation time."))
_JOB_ID = path_id("id", "A job id (job_...).")
_Modality = Literal[(*longrun.MODALITIES, jobs.MODALITY_CHAT)]  # type: ignore[valid-type]  # as async_jobs.py checks


def _generation(path: str, operation_id: str, summary: str, description: str = "") -> Route:
    return Route(method="POST", path=path, operation_id=operation_id, tag="video" if "video" in path or "3d" in path
                 else "audio", summary=summary, auth="bearer",
                 description=description or "An async job: poll GET /v1/jobs/{id}, or pass webhook_url for "
                                            "job.completed / job.failed.",
                 body=json_body(jobs.AsyncJobRequest),
                 answers=(ok_json(202, "The queued job.", jobs.JobAccepted, ("Idempotent-Replayed",)),),
                 errors=CREATE, reads=_CREATE_READS)


_VIDEO_FORM: Final[dict[str, Any]] = {
    "type": "object", "required": ["prompt"],
    "properties": {"prompt": {"type": "string", "minLength": 1}, "model": {"type": "string"},
                   "seconds": {"type": "string", "enum": ["4", "8", "12"]},
                   "size": {"type": "string", "enum": ["720x1280", "1280x720", "1024x1792", "1792x1024"]},
                   "input_reference": {"type": "string", "format": "binary"}}}

JOB_ROUTES: Final = (
    _generation("/v1/videos/generations", "createVideo", "Generate a video"),
    _generation("/v1/audio/music", "createMusic", "Generate music"),
    _generation("/v1/3d/generations", "create3D", "Generate a 3D model"),
    _generation("/v1/music/generate", "createMusicGeneration", "Generate music (AI Stats' surface)",
                "AI Stats Gateway's music endpoint over the same job: poll GET /v1/music/generate/{id}."),
    Route(method="GET", path="/v1/music/generate/{id}", operation_id="getMusicGeneration", tag="audio",
          summary="Get a music generation", auth="bearer", params=(_JOB_ID,),
          answers=(ok_json(200, "The job.", jobs.Job),), errors=READ_ONE),
    Route(method="GET", path="/v1/jobs", operation_id="listJobs", tag="jobs", summary="List jobs", auth="bearer",
          params=(*_JOB_PAGE, Param(name="modality", where="query", type=_Modality, description="Only this kind.")),
          answers=(ok_json(200, "A page of jobs, newest first unless order=asc.", lists.JobList),), errors=READ),
    Route(method="GET", path="/v1/jobs/{id}", operation_id="getJob", tag="jobs", summary="Get a job",
          auth="bearer", params=(_JOB_ID,), answers=(ok_json(200, "The job.", jobs.Job),), errors=READ_ONE),
    Route(method="DELETE", path="/v1/jobs/{id}", operation_id="cancelJob", tag="jobs", summary="Cancel a job",
          auth="bearer", description="409 when the job has finished or is completing.", params=(_JOB_ID,),
          answers=(ok_json(200, "The cancelled job.", jobs.Job),), errors=(*READ_ONE, 409)),
    Route(method="POST", path="/v1/videos", operation_id="createOpenAIVideo", tag="video",
          summary="Create a video (OpenAI's Videos API)", auth="bearer",
          description="OpenAI's form (multipart, input_reference as an upload) or the same fields as JSON.",
          body=Body(media=(("multipart/form-data", _VIDEO_FORM), ("application/json", jobs.VideoCreate))),
          answers=(ok_json(200, "The queued video.", jobs.Video, ("Idempotent-Replayed",)),),
          errors=CREATE, reads=_CREATE_READS),
    Route(method="GET", path="/v1/videos", operation_id="listOpenAIVideos", tag="video", summary="List videos",
          auth="bearer", params=_JOB_PAGE, answers=(ok_json(200, "A page of videos.", lists.VideoList),),
          errors=READ),
    Route(method="GET", path="/v1/videos/{id}", operation_id="getOpenAIVideo", tag="video", summary="Get a video",
          auth="bearer", params=(_JOB_ID,),
          answers=(ok_json(200, "The video.", jobs.Video, ("openai-poll-after-ms",)),), errors=READ_ONE),
    Route(method="GET", path="/v1/videos/{id}/content", operation_id="getOpenAIVideoContent", tag="video",
          summary="Download a video's content", auth="bearer",
          params=(_JOB_ID, Param(name="variant", where="query", type=Literal["video", "thumbnail", "spritesheet"])),
          answers=(Answer(status=200, description="The bytes.", kind="binary",
                          types=(("video/*", None), ("image/*", None), ("application/octet-stream", None))),),
          errors=(*READ_ONE, 409)),
    Route(method="DELETE", path="/v1/videos/{id}", operation_id="deleteOpenAIVideo", tag="video",
          summary="Delete a video", auth="bearer", description="Cancels it if it runs; its files go too.",
          params=(_JOB_ID,), answers=(ok_json(200, "Deleted.", jobs.VideoDeleted),), errors=(*READ_ONE, 409)),
)

_EVAL_CREATE = (400, 401, 402, 403, 404, 413, *BUS)
EVAL_ROUTES: Final = (
    Route(method="POST", path="/v1/evals", operation_id="createEval", tag="evals", summary="Run an eval",
          auth="bearer", description="Runs the dataset on every candidate model and scores them; "
                                     "`model: \"eval:<id>\"` then routes to the winner.",
          body=json_body(EvalCreate), answers=(ok_json(200, "The eval, queued.", EvalView),),
          errors=_EVAL_CREATE, reads=("X-Request-Id", "x-aig-tag", "traceparent")),
    Route(method="GET", path="/v1/evals", operation_id="listEvals", tag="evals", summary="List evals",
          auth="bearer", answers=(ok_json(200, "Evals, newest first (without per-item results).", lists.EvalList),),
          errors=READ),
    Route(method="GET", path="/v1/evals/{id}", operation_id="getEval", tag="evals", summary="Get an eval",
          auth="bearer", params=(path_id(),), answers=(ok_json(200, "The eval.", EvalView),), errors=READ_ONE),
    Route(method="POST", path="/v1/replays", operation_id="createReplay", tag="replays",
          summary="Replay a past request on another model", auth="bearer",
          description="Without shadow, answers the finished comparison; with shadow: true, 202 and poll.",
          body=json_body(ReplayCreate),
          answers=(ok_json(200, "The comparison.", ReplayView), ok_json(202, "The shadow replay, queued.", ReplayView)),
          errors=(*_EVAL_CREATE, 502), reads=("X-Request-Id", "x-aig-tag", "traceparent")),
    Route(method="GET", path="/v1/replays", operation_id="listReplays", tag="replays", summary="List replays",
          auth="bearer", answers=(ok_json(200, "Replays, newest first.", lists.ReplayList),), errors=READ),
    Route(method="GET", path="/v1/replays/{id}", operation_id="getReplay", tag="replays", summary="Get a replay",
          auth="bearer", params=(path_id(),), answers=(ok_json(200, "The replay.", ReplayView),), errors=READ_ONE),
)

_BATCH_ID = path_id("id", "A batch id.")
_BATCH_STATE = (*READ_ONE, 409)
BATCH_ROUTES: Final = (
    Route(method="POST", path="/v1/batches", operation_id="createBatch", tag="batches", summary="Create a batch",
          auth="bearer", description="Runs the lines of an uploaded JSONL file (purpose batch).",
          body=json_body(batches.BatchCreate), answers=(ok_json(200, "The batch.", batches.Batch),),
          errors=CREATE, reads=_CREATE_READS),
    Route(method="GET", path="/v1/batches", operation_id="listBatches", tag="batches", summary="List batches",
          auth="bearer", params=_cursor_params(batches.MAX_LIST),
          answers=(ok_json(200, "A page of batches.", batches.BatchList),), errors=READ),
    Route(method="GET", path="/v1/batches/{id}", operation_id="getBatch", tag="batches", summary="Get a batch",
          auth="bearer", params=(_BATCH_ID,), answers=(ok_json(200, "The batch.", batches.Batch),), errors=READ_ONE),
    Route(method="POST", path="/v1/batches/{id}/cancel", operation_id="cancelBatch", tag="batches",
          summary="Cancel a batch", auth="bearer", params=(_BATCH_ID,),
          answers=(ok_json(200, "The batch, cancelling.", batches.Batch),), errors=_BATCH_STATE),
    Route(method="POST", path="/v1/messages/batches", operation_id="createMessageBatch", tag="batches",
          summary="Create a Message Batch (Anthropic)", auth="bearer", body=json_body(anthropic.MessageBatchCreate),
          answers=(ok_json(200, "The batch.", anthropic.MessageBatch),), errors=CREATE, reads=_CREATE_READS),
    Route(method="GET", path="/v1/messages/batches", operation_id="listMessageBatches", tag="batches",
          summary="List Message Batches", auth="bearer",
          params=(Param(name="after_id", where="query"), Param(name="before_id", where="query"),
                  Param(name="limit", where="query", type=Annotated[int, msgspec.Meta(ge=1, le=1000)])),
          answers=(ok_json(200, "A page of batches.", anthropic.MessageBatchList),), errors=READ),
    Route(method="GET", path="/v1/messages/batches/{id}", operation_id="getMessageBatch", tag="batches",
          summary="Get a Message Batch", auth="bearer", params=(_BATCH_ID,),
          answers=(ok_json(200, "The batch.", anthropic.MessageBatch),), errors=READ_ONE),
    Route(method="POST", path="/v1/messages/batches/{id}/cancel", operation_id="cancelMessageBatch", tag="batches",
          summary="Cancel a Message Batch", auth="bearer", params=(_BATCH_ID,),
          answers=(ok_json(200, "The batch.", anthropic.MessageBatch),), errors=_BATCH_STATE),
    Route(method="GET", path="/v1/messages/batches/{id}/results", operation_id="getMessageBatchResults",
          tag="batches", summary="Download a Message Batch's results", auth="bearer", params=(_BATCH_ID,),
          description="JSONL, one ResultLine per request, once the batch has ended (409 before).",
          answers=(Answer(status=200, description="The results, one JSON object per line.", kind="jsonl",
                          types=(("application/binary", None),), headers=DOWNLOAD_HEADERS),),
          errors=(*_BATCH_STATE, 416), reads=("Range",)),
    Route(method="DELETE", path="/v1/messages/batches/{id}", operation_id="deleteMessageBatch", tag="batches",
          summary="Delete an ended Message Batch", auth="bearer", params=(_BATCH_ID,),
          answers=(ok_json(200, "Deleted.", anthropic.DeletedMessageBatch),), errors=_BATCH_STATE),
)

ROUTES: Final = (*JOB_ROUTES, *EVAL_ROUTES, *BATCH_ROUTES)
