"""Replicate predictions (kind "replicate"): long-running generations only.

  POST {base}/v1/models/{owner}/{name}/predictions  {input: {...}}   (an official model)
  POST {base}/v1/predictions  {version, input}      (upstream "owner/name:version" or a bare version id)
  GET  {base}/v1/predictions/{id}                   status starting | processing | succeeded | failed |
                                                    canceled | aborted; output: a URL, a list of URLs,
                                                    or an object of URLs; logs; metrics.predict_time
  POST {base}/v1/predictions/{id}/cancel

Bearer auth. The input is built from the request's common fields (prompt, duration,
aspect_ratio, resolution, image, negative_prompt, seed); models ignore inputs they do not
declare. A duration is always sent (the modality's default when the client gave none) so
the seconds billed are the seconds asked for. Progress comes from the last percentage in
the logs (tqdm's "45%|####"), when the model prints one. Output URLs (replicate.delivery,
a CDN) are downloaded without the token.
"""

import re
from typing import Any, Final

from libs.contracts.bus.longrun import MODALITY_3D, LongRunHandle, State
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
)

ENV_PROVIDERS: Final = {
    "replicate": ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "https://api.replicate.com"),
}
DEFAULT_SECONDS: Final = {"video": 5, "music": 8}
_STATES: Final[dict[str, State]] = {"starting": "queued", "processing": "processing", "succeeded": "completed",
                                    "failed": "failed", "canceled": "cancelled", "aborted": "cancelled"}
_PERCENT: Final = re.compile(r"(\d{1,3}(?:\.\d+)?)%")
_VERSION: Final = re.compile(r"[0-9a-f]{64}")


def _progress(logs: object) -> float | None:
    if not isinstance(logs, str):
        return None
    found = [float(p) for p in _PERCENT.findall(logs[-4096:]) if float(p) <= 100]
    return found[-1] if found else None


def prediction_status(prediction: dict[str, Any], slug: str) -> Progress:
    state = _STATES.get(str(prediction.get("status")))
    if state is None:
        raise UpstreamError("malformed", f"{slug} sent a prediction with unknown status {prediction.get('status')!r}")
    error = None
    if state == "failed":
        error = str(prediction.get("error") or "the prediction failed")
    progress = 100.0 if state == "completed" else _progress(prediction.get("logs"))
    return Progress(state=state, progress=progress, error=error)


def output_urls(output: object) -> list[str]:
    """The file URLs of a prediction's output, in order."""
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://")) else []
    if isinstance(output, list):
        return [url for item in output for url in output_urls(item)]
    if isinstance(output, dict):
        return [url for item in output.values() for url in output_urls(item)]
    return []


def model_input(spec: Spec) -> dict[str, Any]:
    fields: dict[str, Any] = {"prompt": spec.prompt} if spec.prompt else {}
    seconds = spec.seconds or DEFAULT_SECONDS.get(spec.modality)
    if seconds is not None and spec.modality != MODALITY_3D:
        fields["duration"] = seconds
    for key, value in (("aspect_ratio", spec.aspect_ratio), ("resolution", spec.resolution),
                       ("image", spec.image_url), ("negative_prompt", spec.negative_prompt), ("seed", spec.seed)):
        if value is not None:
            fields[key] = value
    return fields


class Replicate(LongRunAdapter):
    kind = "replicate"

    def _url(self, path: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/v1/{path}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    async def submit(self, upstream_model: str, spec: Spec) -> Submitted:
        name, _, version = upstream_model.partition(":")
        payload: dict[str, Any] = {"input": model_input(spec)}
        if version or _VERSION.fullmatch(name):
            url = self._url("predictions")
            payload["version"] = version or name
        elif name.count("/") == 1:
            url = self._url(f"models/{checked_path(name, 'model')}/predictions")
        else:
            raise UpstreamError("malformed", f"Replicate models are named owner/name, not {upstream_model!r}",
                                status=400)
        prediction, headers = await self.call("POST", url, payload)
        prediction_id = prediction.get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise UpstreamError("malformed", f"{self.slug} created a prediction without an id")
        status = prediction_status(prediction, self.slug)
        status.poll_after_s = retry_hint(headers)
        seconds = payload["input"].get("duration")
        return Submitted(upstream_id=prediction_id, status=status, extra=seconds_extra(seconds))

    async def _prediction(self, handle: LongRunHandle) -> tuple[dict[str, Any], Progress]:
        prediction, headers = await self.call("GET", self._url(f"predictions/{quote_id(handle.upstream_id)}"))
        status = prediction_status(prediction, self.slug)
        status.poll_after_s = retry_hint(headers)
        return prediction, status

    async def poll(self, handle: LongRunHandle) -> Progress:
        return (await self._prediction(handle))[1]

    async def fetch(self, handle: LongRunHandle) -> Result:
        prediction, status = await self._prediction(handle)
        if status.state != "completed":
            return Result(status=status)
        urls = output_urls(prediction.get("output"))
        if not urls:
            raise UpstreamError("malformed", f"{self.slug} finished a prediction without an output file")
        return Result(status=status, files=[ResultFile(url) for url in urls])

    async def cancel(self, handle: LongRunHandle) -> Progress:
        status = await self.poll(handle)
        if status.state in ("completed", "failed", "cancelled"):
            return status
        prediction, _ = await self.call("POST", self._url(f"predictions/{quote_id(handle.upstream_id)}/cancel"))
        after = prediction_status(prediction, self.slug) if prediction else Progress(state="cancelled")
        # A cancel racing the end of the run answers how it really ended.
        return after if after.state in ("completed", "failed") else Progress(state="cancelled")


LONGRUN = Replicate
