"""Async jobs over HTTP: the contract's generation endpoints and /v1/jobs, OpenAI's
/v1/videos (so the `openai` SDK's videos client works unchanged) and AI Stats'
/v1/music/generate, all over one kind of job record in the jobs service.

Creating a job is admitted like a request (key, spend cap / wallet 402, rate limit
429), its body validated here (400 naming the field), and honours Idempotency-Key.
Cancelling (DELETE /v1/jobs/{id}) answers 200 with the cancelled job; a job already
finished, or one completing (its result being fetched, or a chat completion running),
answers 409.
"""

import base64
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from libs.contracts import errors, files
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus import longrun
from libs.contracts.http import jobs as http
from libs.contracts.http.multipart import FormError, form_parts, is_form
from libs.runtime.env import env_float
from services.edge import job_calls
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.idempotency import idempotent
from services.edge.inference import admit, tag_of
from services.edge.relay import reply_response
from services.edge.state import EDGE, EdgeState
from services.edge.validation import validate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_decode_job = msgspec.json.Decoder(http.AsyncJobRequest).decode
_decode_video_json = msgspec.json.Decoder(http.VideoCreate).decode
_VIDEO_FIELDS = ("prompt", "model", "seconds", "size")
_VARIANTS = ("video", "thumbnail", "spritesheet")
_ORDERS = ("asc", "desc")


def _creator(modality: str, surface: str = http.SURFACE_JOB) -> Handler:
    async def create(request: web.Request) -> web.StreamResponse:
        _, principal, sub, body = await admit(request)
        parsed: http.AsyncJobRequest = validate(_decode_job, body)
        forwarded = msgspec.structs.replace(parsed, webhook_url=None)
        spec = http.JobCreate(modality=modality, surface=surface, model=parsed.model or "",
                              body=http.encode(forwarded), webhook_url=parsed.webhook_url)
        return await job_calls.create(request, principal, tag_of(request, sub), spec)

    return idempotent(create, job_calls.authenticate)


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, errors.INVALID_REQUEST, message, param=param)


def _video_form(body: bytes, content_type: str | None, max_reference: int) -> http.VideoCreate:
    """OpenAI's multipart VideoCreate; an uploaded input_reference rides along as a data: URL."""
    try:
        parts = form_parts(body, content_type)
    except FormError as exc:
        raise _bad(f"Malformed multipart body: {exc}") from exc
    fields: dict[str, str] = {}
    for part in parts:
        data = body[part.start:part.end]
        if part.name == "input_reference" and part.filename is not None:
            if len(data) > max_reference:
                raise _bad(f"input_reference is larger than {max_reference} bytes.", "input_reference")
            fields["image_url"] = f"data:{_part_type(body, part.start)};base64,{base64.b64encode(data).decode()}"
        elif part.name == "input_reference[image_url]":
            fields["image_url"] = data.decode("utf-8", errors="replace")
        elif part.name == "input_reference[file_id]":
            raise _bad("input_reference.file_id is not supported; upload the image or pass image_url.",
                       "input_reference")
        elif part.name in _VIDEO_FIELDS and part.filename is None:
            fields[part.name] = data.decode("utf-8", errors="replace")
    return validate(_decode_video_json, msgspec.json.encode(fields))  # a 400 naming the field, as for JSON


def _part_type(body: bytes, data_start: int) -> str:
    head = body[max(0, data_start - 1024):data_start].lower()
    marker = head.rfind(b"content-type:")
    if marker < 0:
        return "application/octet-stream"
    value = head[marker + len(b"content-type:"):].split(b"\r\n", 1)[0].strip().decode("latin-1")
    return value if value.startswith("image/") else "application/octet-stream"


async def _create_video(request: web.Request) -> web.StreamResponse:
    """POST /v1/videos (OpenAI): a multipart form (or the same fields as JSON) -> a Video."""
    state, principal, sub, body = await admit(request)
    if is_form(request.headers.get("Content-Type")):
        parsed = _video_form(body, request.headers.get("Content-Type"), state.settings.max_body_bytes)
    else:
        parsed = validate(_decode_video_json, body)
    spec = http.JobCreate(modality=longrun.MODALITY_VIDEO, surface=http.SURFACE_VIDEO, model=parsed.model or "",
                          body=http.encode(parsed))
    return await job_calls.create(request, principal, tag_of(request, sub), spec)


def _query(request: web.Request, surface: str) -> http.JobQuery:
    params = request.query
    raw_limit = params.get("limit", str(http.DEFAULT_LIST))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise _bad(f"limit must be an integer from 1 to {http.MAX_LIST}, got '{raw_limit[:40]}'.", "limit") from None
    if not 1 <= limit <= http.MAX_LIST:
        raise _bad(f"limit must be from 1 to {http.MAX_LIST}, got {limit}.", "limit")
    order = params.get("order", "desc")
    if order not in _ORDERS:
        raise _bad(f"order must be 'asc' or 'desc', got '{order[:40]}'.", "order")
    modality = params.get("modality")
    if modality is not None and modality not in (*longrun.MODALITIES, http.MODALITY_CHAT):
        raise _bad(f"modality must be one of {', '.join((*longrun.MODALITIES, http.MODALITY_CHAT))}.", "modality")
    return http.JobQuery(surface=surface, base_url=job_calls.base_url(request), modality=modality,
                         after=params.get("after"), limit=limit, order=order)  # type: ignore[arg-type]


def _reader(op: str, surface: str, with_id: bool = True) -> Handler:
    async def read(request: web.Request) -> web.StreamResponse:
        principal = job_calls.authenticate(request)
        reply = await job_calls.call(request, op, principal, http.encode_call(_query(request, surface)),
                                     target_id=request.match_info["id"] if with_id else None)
        response = reply_response(reply, request[REQUEST_ID])
        if surface == http.SURFACE_VIDEO and op == jobs_bus.OP_JOB_GET:
            # The openai SDK's videos.poll() waits this long between polls.
            response.headers["openai-poll-after-ms"] = str(max(100, int(env_float("SWITCHBOARD_JOB_POLL_S", 1.0)
                                                                        * 1000)))
        return response

    return read


async def _video_content(request: web.Request) -> web.StreamResponse:
    """GET /v1/videos/{id}/content: the finished video's bytes, streamed from the Object Store."""
    state: EdgeState = request.app[EDGE]
    principal = job_calls.authenticate(request)
    variant = request.query.get("variant", "video")
    if variant not in _VARIANTS:
        raise _bad(f"variant must be one of {', '.join(_VARIANTS)}.", "variant")
    video_id = request.match_info["id"]
    query = http.JobQuery(base_url=job_calls.base_url(request))
    reply = await job_calls.call(request, jobs_bus.OP_JOB_GET, principal, http.encode_call(query), target_id=video_id)
    job = http.decode_job(reply.body)
    if job.modality != longrun.MODALITY_VIDEO:
        raise GatewayError(404, errors.INVALID_REQUEST, f"No video with id '{video_id}' for this key.", param="id")
    if job.status != "completed" or job.result is None:
        raise GatewayError(409, errors.INVALID_REQUEST,
                           f"Video '{video_id}' is {job.status}; its content is there once it completed.",
                           param="id")
    chosen = _pick(msgspec.convert(job.result, http.GenerationResult).files, variant)
    if chosen is None:
        raise GatewayError(404, errors.INVALID_REQUEST, f"Video '{video_id}' has no {variant}.", param="variant")
    name = files.job_object_name(principal.account_id, video_id, chosen.filename)
    try:
        chunks = await state.blobs.chunks(name)
    except LookupError:
        raise GatewayError(404, errors.INVALID_REQUEST, f"Video '{video_id}' content has expired.",
                           param="id") from None
    response = web.StreamResponse(headers={"Content-Type": chosen.content_type, "Content-Length": str(chosen.bytes),
                                           "X-Request-Id": request[REQUEST_ID]})  # sent before the middleware sees it
    await response.prepare(request)
    async for piece in chunks:
        await response.write(piece)
    await response.write_eof()
    return response


def _pick(outputs: list[http.ResultFile], variant: str) -> http.ResultFile | None:
    if variant == "video":
        videos = [o for o in outputs if o.content_type.startswith("video/")]
        return (videos or outputs)[0] if outputs else None
    named = [o for o in outputs if o.filename.startswith(variant)]
    return named[0] if named else None


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/videos/generations", _creator(longrun.MODALITY_VIDEO))
    add.add_post("/v1/audio/music", _creator(longrun.MODALITY_MUSIC))
    add.add_post("/v1/3d/generations", _creator(longrun.MODALITY_3D))
    add.add_post("/v1/music/generate", _creator(longrun.MODALITY_MUSIC, http.SURFACE_MUSIC))
    add.add_get("/v1/music/generate/{id}", _reader(jobs_bus.OP_JOB_GET, http.SURFACE_MUSIC))
    add.add_get("/v1/jobs", _reader(jobs_bus.OP_JOB_LIST, http.SURFACE_JOB, with_id=False))
    add.add_get("/v1/jobs/{id}", _reader(jobs_bus.OP_JOB_GET, http.SURFACE_JOB))
    add.add_delete("/v1/jobs/{id}", _reader(jobs_bus.OP_JOB_CANCEL, http.SURFACE_JOB))
    add.add_post("/v1/videos", idempotent(_create_video, job_calls.authenticate))
    add.add_get("/v1/videos", _reader(jobs_bus.OP_JOB_LIST, http.SURFACE_VIDEO, with_id=False))
    add.add_get("/v1/videos/{id}", _reader(jobs_bus.OP_JOB_GET, http.SURFACE_VIDEO))
    add.add_get("/v1/videos/{id}/content", _video_content)
    add.add_delete("/v1/videos/{id}", _reader(jobs_bus.OP_JOB_DELETE, http.SURFACE_VIDEO))
