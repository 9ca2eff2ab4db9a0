"""services/router/longrun_spec.py: the generation request checked, and result files named."""

import pytest

from services.router.longrun_spec import MAX_SECONDS, SpecError, content_type_for, filename_for, spec_of


def test_async_job_request_fields() -> None:
    spec = spec_of("video", b'{"prompt": "a fox", "model": "x/y", "duration": 4.2, "aspect_ratio": "9:16",'
                            b' "resolution": "720p", "webhook_url": "https://example.com/h", "unknown": 1}')
    assert (spec.prompt, spec.seconds, spec.aspect_ratio, spec.resolution) == ("a fox", 5, "9:16", "720p")


def test_openai_video_create_fields() -> None:
    spec = spec_of("video", b'{"prompt": "a fox", "seconds": "8", "size": "1280x720"}')
    assert (spec.seconds, spec.size) == (8, "1280x720")
    assert spec_of("video", b'{"prompt": "a fox", "seconds": 12}').seconds == 12
    assert spec_of("video", b'{"prompt": "a fox"}').seconds is None


def test_3d_may_be_image_only() -> None:
    assert spec_of("3d", b'{"image_url": "https://example.com/a.png"}').image_url == "https://example.com/a.png"


@pytest.mark.parametrize(("modality", "body", "param"), [
    ("video", b"", "prompt"), ("video", b'{"prompt": "  "}', "prompt"), ("3d", b"{}", "prompt"),
    ("video", b'{"prompt": "x", "duration": 0}', "duration"),
    ("video", b'{"prompt": "x", "duration": %d}' % (MAX_SECONDS + 1), "duration"),
    ("music", b'{"prompt": "x", "seconds": "nan"}', "seconds"),
    ("music", b'{"prompt": "x", "seconds": "ten"}', "seconds"),
    ("video", b'{"prompt": "x", "image_url": "javascript:alert(1)"}', "image_url"),
    ("video", b'{"prompt": "x", "image_url": "http://[::1"}', "image_url"),
    ("video", b'{"prompt": "' + b"x" * 40_000 + b'"}', "prompt"),
    ("video", b'{"prompt": 7}', None), ("video", b'{"prompt": "x", "duration": "5"}', None),
    ("video", b"[1]", None), ("video", b"{nope", None),
])
def test_bad_requests(modality: str, body: bytes, param: str | None) -> None:
    with pytest.raises(SpecError) as caught:
        spec_of(modality, body)
    assert caught.value.param == param


@pytest.mark.parametrize(("modality", "announced", "url", "content_type", "filename"), [
    ("video", "video/mp4", "https://cdn/x", "video/mp4", "video.mp4"),
    ("video", "application/octet-stream", "https://cdn/out.webm", "video/webm", "video.webm"),
    ("music", "audio/mpeg", "https://cdn/x.wav", "audio/mpeg", "music.mp3"),
    ("music", "", "https://cdn/x", "audio/wav", "music.wav"),
    ("3d", "application/octet-stream", "https://cdn/mesh.glb?sig=1", "model/gltf-binary", "model.glb"),
    ("3d", "text/weird", "https://cdn/mesh", "text/weird", "model.glb"),
])
def test_result_names(modality: str, announced: str, url: str, content_type: str, filename: str) -> None:
    chosen = content_type_for(announced, url, modality)
    assert chosen == content_type and filename_for(modality, chosen, 0) == filename


def test_further_files_are_numbered() -> None:
    assert filename_for("3d", "video/mp4", 1) == "model-1.mp4"
