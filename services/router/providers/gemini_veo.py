"""Google Veo through the Gemini API: the long-running side of kind "gemini".

  POST {base}/v1beta/models/{model}:predictLongRunning
       {instances: [{prompt}], parameters: {durationSeconds, aspectRatio, resolution, negativePrompt, seed}}
       -> a long-running operation {name: "models/{model}/operations/{id}"}
  GET  {base}/v1beta/{name}          {done, error {code, message}?,
                                      response {generateVideoResponse {generatedSamples [{video {uri}}],
                                                raiMediaFilteredCount, raiMediaFilteredReasons}}}
  POST {base}/v1beta/{name}:cancel   (google.longrunning Operations.CancelOperation)

The video URI is on the API's own host and is downloaded with the key (x-goog-api-key);
it redirects to storage, which gets no key. The API reports no progress while running.
An operation that ended with error code 1 (google.rpc CANCELLED) was cancelled. image_url
is refused: Veo takes an input image only inline (bytes), not by URL.
"""

import re
from typing import Any, Final

from libs.contracts.bus.longrun import LongRunHandle
from services.router.providers.base import ProviderSettings, UpstreamError
from services.router.providers.gemini import gemini_error, model_path
from services.router.providers.longrun_base import (
    LongRunAdapter,
    Progress,
    Result,
    ResultFile,
    Spec,
    Submitted,
    checked_path,
    retry_hint,
    seconds_extra,
)

DEFAULT_SECONDS: Final = 8  # Veo 3's default (and only) duration unless durationSeconds says otherwise
_VERSIONED: Final = re.compile(r"/v1(alpha|beta)?\d*$")
_RPC_CANCELLED: Final = 1


def _reason(response: dict[str, Any]) -> str:
    reasons = response.get("raiMediaFilteredReasons")
    if isinstance(reasons, list) and reasons:
        return "filtered by the provider's safety policy: " + "; ".join(str(r) for r in reasons)
    return "the provider finished without producing a video"


def operation_status(operation: dict[str, Any], slug: str) -> tuple[Progress, list[ResultFile]]:
    if not operation.get("done"):
        return Progress(state="processing"), []
    error = operation.get("error")
    if isinstance(error, dict):
        if error.get("code") == _RPC_CANCELLED:
            return Progress(state="cancelled"), []
        return Progress(state="failed", error=str(error.get("message") or "the generation failed")), []
    response = operation.get("response")
    if not isinstance(response, dict):
        raise UpstreamError("malformed", f"{slug} finished an operation with neither response nor error")
    videos = response.get("generateVideoResponse")
    samples = videos.get("generatedSamples") if isinstance(videos, dict) else None
    if not isinstance(samples, list):
        raise UpstreamError("malformed", f"{slug} answered an operation without generatedSamples")
    files = []
    for sample in samples:
        video = sample.get("video") if isinstance(sample, dict) else None
        uri = video.get("uri") if isinstance(video, dict) else None
        if not isinstance(uri, str) or not uri:
            raise UpstreamError("malformed", f"{slug} answered a generated sample without a video uri")
        files.append(ResultFile(uri, video.get("mimeType") or "video/mp4"))
    if not files:
        return Progress(state="failed", error=_reason(videos)), []
    return Progress(state="completed", progress=100.0), files


class GeminiVeo(LongRunAdapter):
    kind = "gemini"
    error_factory = staticmethod(gemini_error)

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        base = settings.base_url.rstrip("/")
        self._base = base if _VERSIONED.search(base) else base + "/v1beta"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.settings.api_key}

    async def submit(self, upstream_model: str, spec: Spec) -> Submitted:
        if spec.image_url is not None:
            raise UpstreamError("malformed", "this provider takes no image_url for video generation", status=400)
        seconds = spec.seconds or DEFAULT_SECONDS
        parameters: dict[str, Any] = {"durationSeconds": seconds}
        for key, value in (("aspectRatio", spec.aspect_ratio), ("resolution", spec.resolution),
                           ("negativePrompt", spec.negative_prompt), ("seed", spec.seed)):
            if value is not None:
                parameters[key] = value
        url = f"{self._base}/{checked_path(model_path(upstream_model), 'model')}:predictLongRunning"
        operation, headers = await self.call("POST", url, {"instances": [{"prompt": spec.prompt}],
                                                           "parameters": parameters})
        name = operation.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamError("malformed", f"{self.slug} started an operation without a name")
        checked_path(name, "operation name")
        status, _ = operation_status(operation, self.slug)
        if status.state == "processing":
            status.state = "queued"
        status.poll_after_s = retry_hint(headers)
        return Submitted(upstream_id=name, status=status, extra=seconds_extra(seconds))

    async def _operation(self, handle: LongRunHandle) -> tuple[Progress, list[ResultFile]]:
        operation, headers = await self.call("GET", f"{self._base}/{checked_path(handle.upstream_id, 'operation')}")
        status, files = operation_status(operation, self.slug)
        status.poll_after_s = retry_hint(headers)
        return status, files

    async def poll(self, handle: LongRunHandle) -> Progress:
        return (await self._operation(handle))[0]

    async def fetch(self, handle: LongRunHandle) -> Result:
        status, files = await self._operation(handle)
        return Result(status=status, files=files)

    async def cancel(self, handle: LongRunHandle) -> Progress:
        status = await self.poll(handle)
        if status.state in ("completed", "failed", "cancelled"):
            return status
        await self.call("POST", f"{self._base}/{checked_path(handle.upstream_id, 'operation')}:cancel", {})
        return Progress(state="cancelled")


LONGRUN = GeminiVeo
