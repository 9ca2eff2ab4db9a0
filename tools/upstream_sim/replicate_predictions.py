"""Replicate's predictions API, long-running (job machinery in jobs.py).

  POST /v1/models/{owner}/{name}/predictions  {input: {prompt, duration, ...}}   -> a prediction
  POST /v1/predictions                        {version, input}                  -> a prediction
  GET  /v1/predictions/{id}                   status starting | processing | succeeded | failed | canceled,
                                              output (a file URL; for 3D {"model_file": url}), logs, metrics
  POST /v1/predictions/{id}/cancel            the prediction, canceled

Bearer auth (any token, or exactly SimSettings.api_key); errors in Replicate's problem shape
{"title", "detail", "status"}. Directives ride in the model name (``sim/video-sim+job_s=2``) or,
for /v1/predictions, in the version. ``progress`` writes tqdm-style percentages into `logs`.
The duration is ``input.duration`` (default 5; music 8); 3D makes one GLB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from aiohttp import web

from tools.upstream_sim.common import (
    SETTINGS_KEY,
    delay_ms,
    hang_until_disconnect,
    json_response,
    malformed_json_response,
    reset_connection,
)
from tools.upstream_sim.directives import DirectiveError, parse_directives
from tools.upstream_sim.jobs import FAILURE_MESSAGE, JOBS_KEY, SimJob, file_url, media_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Recorder = Callable[[web.Request, bytes], dict[str, str]]

_WIRE: Final = "replicate"
_STATUS: Final = {"completed": "succeeded", "failed": "failed", "cancelled": "canceled"}
_DEFAULT_SECONDS: Final = {"video": 5, "music": 8, "3d": 0}


def problem(status: int, detail: str) -> web.Response:
    titles = {400: "Bad Request", 401: "Unauthenticated", 404: "Not found", 422: "Input validation failed",
              429: "Too Many Requests"}
    return json_response({"title": titles.get(status, "Error"), "detail": detail, "status": status}, status=status)


def _auth(request: web.Request) -> web.Response | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[SETTINGS_KEY].api_key
    if scheme.lower() != "bearer" or not token.strip() or (expected is not None and token.strip() != expected):
        return problem(401, "You did not pass a valid authentication token")
    return None


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def prediction(request: web.Request, job: SimJob, fresh: bool = False) -> dict[str, Any]:
    """The prediction; `fresh` (the create answer) is always still starting."""
    state = "running" if fresh else job.state()
    if state == "running":
        status = "starting" if fresh or job.fraction() < 0.1 else "processing"
    else:
        status = _STATUS[state]
    base = f"{request.scheme}://{request.host}/v1/predictions/{job.id}"
    logs = ""
    if job.report_progress and state != "cancelled" and not fresh:
        percent = job.percent()
        logs = f"Generating...\n{percent:3d}%|{'#' * (percent // 10):<10}| {percent}/100\n"
    output: Any = None
    if state == "completed":
        output = {"model_file": file_url(request, job)} if job.media == "3d" else file_url(request, job)
    body: dict[str, Any] = {
        "id": job.id, "model": job.model, "version": job.options.get("version", ""), "input": {"prompt": job.prompt},
        "logs": logs, "output": output, "error": FAILURE_MESSAGE if state == "failed" else None, "status": status,
        "created_at": _iso(job.created_unix), "data_removed": False,
        "urls": {"get": base, "cancel": base + "/cancel"},
    }
    if state in ("completed", "failed"):
        body["completed_at"] = _iso(job.created_unix + job.job_s)
        body["metrics"] = {"predict_time": job.job_s}
    return body


def prediction_routes(record: Recorder) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) for the predictions API; app.py registers them."""

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        sim_headers = record(request, body)
        denied = _auth(request)
        if denied is not None:
            return denied
        try:
            payload = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return problem(400, "The request body is not valid JSON.")
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), dict):
            return problem(422, "input is required and must be an object")
        if "owner" in request.match_info:
            model = f"{request.match_info['owner']}/{request.match_info['name']}"
        elif isinstance(payload.get("version"), str) and payload["version"]:
            model = payload["version"]
        else:
            return problem(422, "version is required")
        try:
            base, directives = parse_directives(model, sim_headers, request.app[SETTINGS_KEY])
        except DirectiveError as exc:
            return problem(422, str(exc))
        if directives.reset:
            return await reset_connection(request)
        if directives.hang:
            return await hang_until_disconnect(request)
        await delay_ms(directives.latency_ms)
        if directives.status is not None:
            return problem(directives.status, f"Simulated error {directives.status}.")
        if directives.malformed:
            return malformed_json_response()
        inputs = payload["input"]
        table = request.app[JOBS_KEY]
        seconds = inputs.get("duration", _DEFAULT_SECONDS[media_of(base)])
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            return problem(422, "input.duration must be a number of seconds between 0 and 600")
        job = table.create(_WIRE, base, directives, int(seconds), str(inputs.get("prompt", "")))
        if "owner" not in request.match_info:
            job.options["version"] = base
        return json_response(prediction(request, job, fresh=True), status=201)

    async def lookup(request: web.Request) -> SimJob | web.Response:
        record(request, b"")
        denied = _auth(request)
        if denied is not None:
            return denied
        job = request.app[JOBS_KEY].get(request.match_info["prediction_id"], _WIRE)
        return job if job is not None else problem(404, "The requested resource could not be found.")

    async def get(request: web.Request) -> web.StreamResponse:
        job = await lookup(request)
        if isinstance(job, web.Response):
            return job
        if job.poll_status is not None:
            return problem(job.poll_status, f"Simulated error {job.poll_status}.")
        return json_response(prediction(request, job))

    async def cancel(request: web.Request) -> web.StreamResponse:
        job = await lookup(request)
        if isinstance(job, web.Response):
            return job
        if job.state() == "running":
            job.cancelled = True
        return json_response(prediction(request, job))

    return [("POST", "/v1/models/{owner}/{name}/predictions", create), ("POST", "/v1/predictions", create),
            ("GET", "/v1/predictions/{prediction_id}", get),
            ("POST", "/v1/predictions/{prediction_id}/cancel", cancel)]
