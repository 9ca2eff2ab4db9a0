"""What a long-running request asks for, checked, and what its results are called.

`spec_of` turns the client's body (AsyncJobRequest or OpenAI VideoCreate fields, as the
jobs service forwards it) into the Spec every adapter translates, or says what is wrong
with it. `filename_for` names a result file by modality and content type (video.mp4,
music.wav, model.glb, ...): the name under which GET /v1/files/jobs/{id}/{filename}
serves it.
"""

import math
import urllib.parse
from typing import Final

import msgspec

from libs.contracts.bus.longrun import MODALITY_3D, MODALITY_MUSIC, MODALITY_VIDEO
from services.router.providers.longrun_base import GenerationRequest, Spec

MAX_SECONDS: Final = 600
MAX_PROMPT_CHARS: Final = 32_000
_STEMS: Final = {MODALITY_VIDEO: "video", MODALITY_MUSIC: "music", MODALITY_3D: "model"}
_DEFAULT_EXTENSIONS: Final = {MODALITY_VIDEO: "mp4", MODALITY_MUSIC: "wav", MODALITY_3D: "glb"}
_EXTENSIONS: Final = {
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/ogg": "ogg", "audio/flac": "flac", "audio/aac": "aac",
    "model/gltf-binary": "glb", "model/gltf+json": "gltf", "model/obj": "obj", "model/stl": "stl",
    "application/zip": "zip", "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp",
}
_TYPES: Final = {ext: content_type for content_type, ext in reversed(list(_EXTENSIONS.items()))}
_decode = msgspec.json.Decoder(GenerationRequest).decode


class SpecError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _seconds(request: GenerationRequest) -> int | None:
    raw, param = (request.duration, "duration") if request.duration is not None else (request.seconds, "seconds")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SpecError(f"'{param}' must be a number of seconds, got {raw!r}.", param) from None
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise SpecError(f"'{param}' must be more than 0 and at most {MAX_SECONDS} seconds.", param)
    return math.ceil(value)


def spec_of(modality: str, body: bytes) -> Spec:
    try:
        request = _decode(body or b"{}")
    except msgspec.ValidationError as exc:
        raise SpecError(f"Invalid generation request: {exc}.") from None
    except msgspec.DecodeError:
        raise SpecError("The generation request is not a JSON object.") from None
    if len(request.prompt) > MAX_PROMPT_CHARS:
        raise SpecError(f"'prompt' is longer than {MAX_PROMPT_CHARS} characters.", "prompt")
    if not request.prompt.strip() and not (modality == MODALITY_3D and request.image_url):
        raise SpecError("'prompt' is required" + (" (or image_url)." if modality == MODALITY_3D else "."), "prompt")
    if request.image_url is not None and _scheme(request.image_url) not in ("http", "https"):
        raise SpecError("'image_url' must be an http(s) URL.", "image_url")
    return Spec(modality=modality, prompt=request.prompt, seconds=_seconds(request), size=request.size,
                aspect_ratio=request.aspect_ratio, resolution=request.resolution, image_url=request.image_url,
                negative_prompt=request.negative_prompt, seed=request.seed)


def _scheme(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).scheme
    except ValueError:  # "http://[::1" is no URL at all
        return None


def _url_extension(url: str) -> str | None:
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    ext = ext.lower()
    return ext if dot and stem and ext in _TYPES else None


def content_type_for(announced: str, url: str, modality: str) -> str:
    """The provider's content type, or one guessed from the URL (or the modality) when it sent none useful."""
    if announced in _EXTENSIONS:
        return announced
    ext = _url_extension(url)
    if ext is not None:
        return _TYPES[ext]
    if announced and announced != "application/octet-stream":
        return announced
    return _TYPES[_DEFAULT_EXTENSIONS.get(modality, "mp4")]


def filename_for(modality: str, content_type: str, index: int) -> str:
    ext = _EXTENSIONS.get(content_type) or _DEFAULT_EXTENSIONS.get(modality, "bin")
    stem = _STEMS.get(modality, "output")
    return f"{stem}.{ext}" if index == 0 else f"{stem}-{index}.{ext}"
