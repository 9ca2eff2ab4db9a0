"""fal.ai's queue (kind "fal"): long-running generations only.

  POST {base}/{model_id}                             the model's input -> {request_id, status_url,
                                                     response_url, cancel_url}
  GET  {base}/{app}/requests/{id}/status?logs=1      IN_QUEUE (queue_position) | IN_PROGRESS | COMPLETED
                                                     (with `error` when the run failed), logs
  GET  {base}/{app}/requests/{id}                    the result JSON: {video | audio_file | model_mesh ...:
                                                     {url, content_type, file_name, file_size}}
  PUT  {base}/{app}/requests/{id}/cancel

`Authorization: Key <FAL_KEY>`. The model id may have a sub-path (fal-ai/kling-video/v2.1/
standard/text-to-video); the request URLs fal answers are for the app without it, so they
are kept in the handle, and used only when they are on fal's own origin (the key goes
nowhere else; otherwise they are rebuilt from the base URL). The input carries the common
fields under the names fal's models use: prompt, duration (a string, video) or
seconds_total (music), aspect_ratio, resolution, image_url (input_image_url too, for 3D),
negative_prompt, seed; a duration is always sent so the seconds billed are those asked for.
Progress comes from the last percentage in the logs, when the model prints one.
"""

import re
from typing import Any, Final

from libs.contracts.bus.longrun import MODALITY_3D, MODALITY_MUSIC, MODALITY_VIDEO, LongRunHandle, State
from services.router.providers.base import UpstreamError
from services.router.providers.longrun_base import (
    LongRunAdapter,
    Progress,
    Result,
    ResultFile,
    Spec,
    Submitted,
    checked_path,
    quote_id,
    retry_hint,
    seconds_extra,
    whole_seconds,
)

ENV_PROVIDERS: Final = {"fal": ("FAL_KEY", "FAL_BASE_URL", "https://queue.fal.run")}
DEFAULT_SECONDS: Final = {MODALITY_VIDEO: 5, MODALITY_MUSIC: 30}
_STATES: Final[dict[str, State]] = {"IN_QUEUE": "queued", "IN_PROGRESS": "processing", "COMPLETED": "completed",
                                    "FAILED": "failed", "CANCELED": "cancelled", "CANCELLED": "cancelled"}
# Where each modality's file sits in a result, most specific first; else the first {url} found.
_RESULT_KEYS: Final = {MODALITY_VIDEO: ("video",), MODALITY_MUSIC: ("audio_file", "audio"),
                       MODALITY_3D: ("model_mesh", "model_glb", "glb", "mesh", "model")}
_PERCENT: Final = re.compile(r"(\d{1,3}(?:\.\d+)?)%")
_TERMINAL: Final = ("completed", "failed", "cancelled")


def _progress(logs: object) -> float | None:
    if not isinstance(logs, list):
        return None
    found = [float(p) for entry in logs[-50:] if isinstance(entry, dict)
             for p in _PERCENT.findall(str(entry.get("message", ""))) if float(p) <= 100]
    return found[-1] if found else None


def queue_status(answer: dict[str, Any], slug: str) -> Progress:
    state = _STATES.get(str(answer.get("status")))
    if state is None:
        raise UpstreamError("malformed", f"{slug} sent a request status {answer.get('status')!r}")
    error = answer.get("error")
    if state == "completed" and error:
        return Progress(state="failed", error=str(error))
    if state == "failed":
        return Progress(state="failed", error=str(error or "the request failed"))
    progress = 100.0 if state == "completed" else _progress(answer.get("logs"))
    return Progress(state=state, progress=progress)


def _files(node: object) -> list[dict[str, Any]]:
    """Every {url: ...} object in a result, depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("url"), str):
            return [node]
        return [f for value in node.values() for f in _files(value)]
    if isinstance(node, list):
        return [f for value in node for f in _files(value)]
    return []


def result_files(result: dict[str, Any], modality: str) -> list[ResultFile]:
    for key in _RESULT_KEYS.get(modality, ()):
        found = _files(result.get(key))
        if found:
            break
    else:
        found = _files(result)
    return [ResultFile(f["url"], f.get("content_type") if isinstance(f.get("content_type"), str) else None)
            for f in found]


def model_input(spec: Spec) -> dict[str, Any]:
    fields: dict[str, Any] = {"prompt": spec.prompt} if spec.prompt else {}
    seconds = spec.seconds or DEFAULT_SECONDS.get(spec.modality)
    if spec.modality == MODALITY_VIDEO and seconds is not None:
        fields["duration"] = str(seconds)  # fal's video models take the duration as a string enum
    elif spec.modality == MODALITY_MUSIC and seconds is not None:
        fields["seconds_total"] = seconds
    if spec.image_url is not None:
        fields["image_url"] = spec.image_url
        if spec.modality == MODALITY_3D:
            fields["input_image_url"] = spec.image_url
    for key, value in (("aspect_ratio", spec.aspect_ratio), ("resolution", spec.resolution),
                       ("negative_prompt", spec.negative_prompt), ("seed", spec.seed)):
        if value is not None:
            fields[key] = value
    return fields


class Fal(LongRunAdapter):
    kind = "fal"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.settings.api_key}"}

    def _request_url(self, handle: LongRunHandle, key: str, suffix: str) -> str:
        given = handle.extra.get(key, "")
        if given and self._own_origin(given):
            return given
        # fal's request URLs name the app (owner/name) without the model's sub-path.
        app = "/".join(handle.upstream_model.split("+", 1)[0].split("/")[:2])
        return (f"{self.settings.base_url.rstrip('/')}/{checked_path(app, 'model')}/requests/"
                f"{quote_id(handle.upstream_id)}{suffix}")

    async def submit(self, upstream_model: str, spec: Spec) -> Submitted:
        fields = model_input(spec)
        answer, headers = await self.call("POST", f"{self.settings.base_url.rstrip('/')}/"
                                                  f"{checked_path(upstream_model, 'model')}", fields)
        request_id = answer.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise UpstreamError("malformed", f"{self.slug} queued a request without a request_id")
        extra = {key: str(answer[key]) for key in ("status_url", "response_url", "cancel_url")
                 if isinstance(answer.get(key), str)}
        extra["modality"] = spec.modality
        seconds = fields.get("seconds_total") or fields.get("duration")
        extra.update(seconds_extra(int(seconds) if seconds is not None else None))
        status = queue_status(answer, self.slug) if "status" in answer else Progress(state="queued")
        status.poll_after_s = retry_hint(headers)
        return Submitted(upstream_id=request_id, status=status, extra=extra)

    async def poll(self, handle: LongRunHandle) -> Progress:
        url = self._request_url(handle, "status_url", "/status")
        answer, headers = await self.call("GET", url + ("&" if "?" in url else "?") + "logs=1")
        status = queue_status(answer, self.slug)
        status.poll_after_s = retry_hint(headers)
        return status

    async def fetch(self, handle: LongRunHandle) -> Result:
        status = await self.poll(handle)
        if status.state != "completed":
            return Result(status=status)
        result, _ = await self.call("GET", self._request_url(handle, "response_url", ""))
        files = result_files(result, handle.extra.get("modality", MODALITY_VIDEO))
        if not files:
            raise UpstreamError("malformed", f"{self.slug} finished a request without an output file")
        seconds = None
        for key in ("duration", "seconds", "duration_s"):
            seconds = seconds or whole_seconds(result.get(key))
        return Result(status=status, files=files, seconds=seconds)

    async def cancel(self, handle: LongRunHandle) -> Progress:
        status = await self.poll(handle)
        if status.state in _TERMINAL:
            return status
        try:
            await self.call("PUT", self._request_url(handle, "cancel_url", "/cancel"))
        except UpstreamError as exc:
            if exc.status != 400:  # 400 ALREADY_COMPLETED: it finished meanwhile
                raise
            return await self.poll(handle)
        return Progress(state="cancelled")


LONGRUN = Fal
