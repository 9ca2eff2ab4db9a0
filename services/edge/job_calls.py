"""Edge -> jobs service calls for async jobs (bus/jobs.py JobsRequest with an
http/jobs.py JobCreate or JobQuery body), shared by the job routes (async_jobs.py)
and chat completions with `webhook_url` (inference.py)."""

import msgspec
from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Principal, Reply
from libs.contracts.http import jobs as http
from libs.contracts.http.chat import ChatCompletionRequest
from libs.runtime.env import env_str
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.idempotency import idempotent
from services.edge.relay import reply_response, request_reply
from services.edge.spans import traceparent_for
from services.edge.state import EDGE, EdgeState

_QUERY_TIMEOUT_S = 10.0
# The chat fields that only steer this gateway: never part of the body a provider sees.
_GATEWAY_ONLY = ("webhook_url", "stream", "stream_options")


def base_url(request: web.Request) -> str:
    """The public /v1 URL result links point at: SWITCHBOARD_PUBLIC_URL, else the host asked."""
    public = env_str("SWITCHBOARD_PUBLIC_URL", "").rstrip("/")
    if not public:
        public = f"{request.scheme}://{request.host}"
    return public if public.endswith("/v1") else f"{public}/v1"


def check_webhook_url(url: str | None) -> None:
    if url is not None and not http.valid_webhook_url(url):
        raise GatewayError(400, errors.INVALID_REQUEST, "webhook_url must be an absolute http(s) URL.",
                           param="webhook_url")


def authenticate(request: web.Request) -> Principal:
    return request.app[EDGE].keys.check(request.headers).principal


async def call(request: web.Request, op: str, principal: Principal, body: bytes, *,
               target_id: str | None = None, tag: str | None = None) -> Reply:
    state: EdgeState = request.app[EDGE]
    message = jobs_bus.JobsRequest(op=op, principal=principal, target_id=target_id, body=body, tag=tag,
                                   traceparent=traceparent_for(request))
    return await request_reply(state.nc, subjects.JOBS_API, jobs_bus.encode(message), _QUERY_TIMEOUT_S,
                               unavailable="The jobs service (async jobs) is not running")


async def create(request: web.Request, principal: Principal, tag: str | None, spec: http.JobCreate
                 ) -> web.Response:
    check_webhook_url(spec.webhook_url)
    spec.base_url = base_url(request)
    reply = await call(request, jobs_bus.OP_JOB_CREATE, principal, http.encode_call(spec), tag=tag)
    return reply_response(reply, request[REQUEST_ID])


async def chat_job(request: web.Request, principal: Principal, tag: str | None, body: bytes,
                   parsed: ChatCompletionRequest) -> web.StreamResponse:
    """POST /v1/chat/completions with webhook_url: 202 and a job whose result is the completion."""
    if parsed.stream:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           "stream cannot be combined with webhook_url: the completion is delivered as a job result.",
                           param="stream")
    check_webhook_url(parsed.webhook_url)
    payload = msgspec.json.decode(body)  # an object: the body was validated as a ChatCompletionRequest
    for name in _GATEWAY_ONLY:
        payload.pop(name, None)
    spec = http.JobCreate(modality=http.MODALITY_CHAT, surface=http.SURFACE_JOB, model=parsed.model,
                          body=msgspec.json.encode(payload), webhook_url=parsed.webhook_url)

    async def handler(request: web.Request) -> web.StreamResponse:
        return await create(request, principal, tag, spec)

    return await idempotent(handler, authenticate)(request)
