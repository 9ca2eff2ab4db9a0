"""Google Veo through the Gemini API, long-running (job machinery in jobs.py).

  POST /v1beta/models/{model}:predictLongRunning  {instances: [{prompt}], parameters: {durationSeconds
       (1-60, default 8), aspectRatio (16:9 | 9:16)}} -> {name: "models/{model}/operations/{id}"}
  GET  /v1beta/models/{model}/operations/{id}      {name, done, metadata, response {generateVideoResponse
       {generatedSamples [{video {uri}}]}} | error {code, message}}
  POST /v1beta/models/{model}/operations/{id}:cancel   -> {}; the operation ends with error code 1
  GET  /v1beta/files/{id}:download?alt=media       302 to the MP4 under /_sim/files (as Google's
       download redirects to storage)

Auth like the rest of the Gemini wire (x-goog-api-key or ?key=). Directives ride in the
model name at submit (``veo-sim+job_s=2``); the operation name carries the model without them.
A failed job (``fail``) ends with error code 13 (INTERNAL) and the failure message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from tools.upstream_sim.common import SETTINGS_KEY, InvalidRequest, delay_ms, json_response, malformed_json_response
from tools.upstream_sim.directives import Directives
from tools.upstream_sim.gemini_wire import _auth_error, _status_error, gemini_error
from tools.upstream_sim.jobs import FAILURE_MESSAGE, JOBS_KEY, SimJob

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Recorder = Callable[[web.Request, bytes], dict[str, str]]

_WIRE: Final = "gemini"
_RPC_CANCELLED: Final = 1
_RPC_INTERNAL: Final = 13
_METADATA: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningMetadata"
_RESPONSE: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"


def operation(request: web.Request, job: SimJob) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"models/{job.model}/operations/{job.id}", "metadata": {"@type": _METADATA}}
    state = job.state()
    if state == "running":
        body["done"] = False
        return body
    body["done"] = True
    if state == "cancelled":
        body["error"] = {"code": _RPC_CANCELLED, "message": "Operation cancelled."}
    elif state == "failed":
        body["error"] = {"code": _RPC_INTERNAL, "message": FAILURE_MESSAGE}
    else:
        uri = f"{request.scheme}://{request.host}/v1beta/files/{job.id}:download?alt=media"
        samples = [{"video": {"uri": uri}}]
        body["response"] = {"@type": _RESPONSE, "generateVideoResponse": {"generatedSamples": samples}}
    return body


async def predict_long_running(request: web.Request, payload: dict[str, Any], model: str,
                               directives: Directives) -> web.StreamResponse:
    """The ``predictLongRunning`` method for gemini_wire's ``/v1beta/models/{model}:{method}`` route."""
    instances = payload.get("instances")
    prompt = instances[0].get("prompt") if isinstance(instances, list) and instances and \
        isinstance(instances[0], dict) else None
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("* PredictLongRunningRequest.instances[0].prompt: prompt is required")
    parameters = payload.get("parameters") or {}
    seconds = parameters.get("durationSeconds", 8) if isinstance(parameters, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 60:
        raise InvalidRequest("parameters.durationSeconds must be an integer between 1 and 60.")
    if parameters.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        raise InvalidRequest("parameters.aspectRatio must be 16:9 or 9:16.")
    await delay_ms(directives.latency_ms)
    if directives.malformed:
        return malformed_json_response()
    base = model.partition("+")[0]
    job = request.app[JOBS_KEY].create(_WIRE, base, directives, seconds, prompt)
    return json_response({"name": f"models/{base}/operations/{job.id}"})


def veo_routes(record: Recorder) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) for operations and downloads; app.py registers them."""

    async def lookup(request: web.Request, job_id: str) -> SimJob | web.Response:
        record(request, b"")
        denied = _auth_error(request, request.app[SETTINGS_KEY])
        if denied is not None:
            return denied
        job = request.app[JOBS_KEY].get(job_id, _WIRE)
        if job is None:
            return gemini_error(404, f"Operation {job_id!r} not found.")
        return job

    async def get_operation(request: web.Request) -> web.StreamResponse:
        job = await lookup(request, request.match_info["op"])
        if isinstance(job, web.Response):
            return job
        if job.poll_status is not None:
            return _status_error(job.poll_status, None)
        return json_response(operation(request, job))

    async def cancel_operation(request: web.Request) -> web.StreamResponse:
        op, _, method = request.match_info["op"].rpartition(":")
        if method != "cancel" or not op:
            return gemini_error(404, f"Method {method!r} is not found.")
        job = await lookup(request, op)
        if isinstance(job, web.Response):
            return job
        if job.state() == "running":
            job.cancelled = True
        return json_response({})

    async def download(request: web.Request) -> web.StreamResponse:
        job_id, _, method = request.match_info["name"].rpartition(":")
        job = await lookup(request, job_id)
        if isinstance(job, web.Response):
            return job
        if method != "download" or job.state() != "completed":
            return gemini_error(404, "File not found.")
        raise web.HTTPFound(f"/_sim/files/{job.id}/{job.filename}")

    return [("GET", "/v1beta/models/{model}/operations/{op}", get_operation),
            ("POST", "/v1beta/models/{model}/operations/{op}", cancel_operation),
            ("GET", "/v1beta/files/{name}", download)]
