"""OpenAI's Videos API (Sora) and servers speaking it: the long-running side of kind "openai".

  POST   {base}/videos               {model, prompt, seconds: "8", size: "1280x720"} -> a video object
  GET    {base}/videos/{id}          status queued | in_progress | completed | failed, progress 0-100,
                                     seconds, error {code, message}
  GET    {base}/videos/{id}/content  the MP4
  DELETE {base}/videos/{id}          how a job is stopped (the API has no separate cancel)

`seconds` and `size` are strings in OpenAI's API. A size is derived from aspect_ratio
(and resolution 1080p) when the client gave none. image_url is refused: OpenAI takes an
image reference only as an uploaded file.
"""

from typing import Any, Final

from libs.contracts.bus.longrun import LongRunHandle, State
from services.router.providers.base import UpstreamError
from services.router.providers.longrun_base import (
    LongRunAdapter,
    Progress,
    Result,
    ResultFile,
    Spec,
    Submitted,
    quote_id,
    retry_hint,
    seconds_extra,
    whole_seconds,
)

DEFAULT_SECONDS: Final = 4  # OpenAI's default for `seconds`
_STATES: Final[dict[str, State]] = {"queued": "queued", "in_progress": "processing", "completed": "completed",
                                    "failed": "failed", "cancelled": "cancelled"}
_SIZES: Final = {("16:9", False): "1280x720", ("9:16", False): "720x1280",
                 ("16:9", True): "1792x1024", ("9:16", True): "1024x1792"}


def _size(spec: Spec) -> str | None:
    if spec.size is not None:
        return spec.size
    if spec.aspect_ratio is None:
        return None
    size = _SIZES.get((spec.aspect_ratio, (spec.resolution or "").lower() == "1080p"))
    if size is None:
        raise UpstreamError("malformed", f"aspect_ratio {spec.aspect_ratio!r} is not offered by this model "
                                         "(16:9 or 9:16)", status=400)
    return size


def progress_of(video: dict[str, Any], slug: str) -> Progress:
    state = _STATES.get(str(video.get("status")))
    if state is None:
        raise UpstreamError("malformed", f"{slug} sent a video with unknown status {video.get('status')!r}")
    raw = video.get("progress")
    progress = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    error = None
    if state == "failed":
        detail = video.get("error")
        error = str(detail.get("message") or detail.get("code")) if isinstance(detail, dict) else None
        error = error or "the provider reported the generation failed"
    return Progress(state=state, progress=progress, error=error)


class OpenAIVideos(LongRunAdapter):
    kind = "openai"

    def _url(self, *parts: str) -> str:
        return "/".join([self.settings.base_url.rstrip("/"), "videos", *parts])

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    async def submit(self, upstream_model: str, spec: Spec) -> Submitted:
        if spec.image_url is not None:
            raise UpstreamError("malformed", "this provider takes no image_url for video generation", status=400)
        seconds = spec.seconds or DEFAULT_SECONDS
        payload: dict[str, Any] = {"model": upstream_model, "prompt": spec.prompt, "seconds": str(seconds)}
        size = _size(spec)
        if size is not None:
            payload["size"] = size
        video, headers = await self.call("POST", self._url(), payload)
        video_id = video.get("id")
        if not isinstance(video_id, str) or not video_id:
            raise UpstreamError("malformed", f"{self.slug} created a video without an id")
        status = progress_of(video, self.slug)
        status.poll_after_s = retry_hint(headers)
        return Submitted(upstream_id=video_id, status=status, extra=seconds_extra(seconds))

    async def _video(self, handle: LongRunHandle) -> tuple[dict[str, Any], Progress]:
        video, headers = await self.call("GET", self._url(quote_id(handle.upstream_id)))
        status = progress_of(video, self.slug)
        status.poll_after_s = retry_hint(headers)
        return video, status

    async def poll(self, handle: LongRunHandle) -> Progress:
        return (await self._video(handle))[1]

    async def fetch(self, handle: LongRunHandle) -> Result:
        video, status = await self._video(handle)
        if status.state != "completed":
            return Result(status=status)
        url = self._url(quote_id(handle.upstream_id), "content")
        return Result(status=status, files=[ResultFile(url, "video/mp4")], seconds=whole_seconds(video.get("seconds")))

    async def cancel(self, handle: LongRunHandle) -> Progress:
        status = await self.poll(handle)
        if status.state in ("completed", "failed", "cancelled"):
            return status
        await self.call("DELETE", self._url(quote_id(handle.upstream_id)))
        return Progress(state="cancelled", progress=status.progress)


LONGRUN = OpenAIVideos
