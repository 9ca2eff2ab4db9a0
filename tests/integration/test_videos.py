"""OpenAI's videos API over the gateway's jobs, through the official `openai` SDK
unchanged: create_and_poll, retrieve, list, download_content, delete."""

import warnings

import httpx
import openai
import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster
from tests.integration.test_jobs_chat import post

VIDEO = "sim/video-sim"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK flags the Sora API's end


def _form(boundary: str, fields: dict[str, str], image: bytes | None = None) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    if image is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="input_reference"; filename="ref.png"'
                     f"\r\nContent-Type: image/png\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _post_form(gateway: Cluster, body: bytes, boundary: str, key: str | None = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
    return post(gateway, "/videos", key, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                          **(headers or {})}, content=body)


def test_the_openai_sdk_makes_polls_downloads_lists_and_deletes_a_video(gateway: Cluster) -> None:
    client = gateway.client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        video = client.videos.create_and_poll(model=VIDEO, prompt="a red kite over the sea", seconds="4",
                                              size="1280x720")
        assert video.status == "completed", video
        assert (video.object, video.progress, video.seconds, video.size) == ("video", 100, "4", "1280x720")
        assert video.model == VIDEO and video.prompt == "a red kite over the sea" and video.error is None
        assert video.completed_at is not None and video.expires_at is not None and video.expires_at > video.completed_at
        content = client.videos.download_content(video.id)
        assert len(content.read()) > 0
        job = call(gateway, "GET", f"/jobs/{video.id}").json()  # the same job on the contract's surface
        assert job["result"]["files"][0]["bytes"] == len(client.videos.download_content(video.id, variant="video")
                                                            .read())
        assert generation(gateway, video.id)["status"] == 200
        assert video.id in [v.id for v in client.videos.list(limit=100)]
        page = client.videos.list(limit=1, order="asc")
        assert len(page.data) == 1 and page.data[0].object == "video"
        with pytest.raises(openai.NotFoundError):
            client.videos.download_content(video.id, variant="thumbnail")
        deleted = client.videos.delete(video.id)
        assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(video.id)
        with pytest.raises(openai.NotFoundError):
            client.videos.download_content(video.id)


def test_a_failed_or_running_video_reads_as_openai_does(gateway: Cluster) -> None:
    client = gateway.client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        failed = client.videos.create_and_poll(model=f"{VIDEO}+fail", prompt="doomed")
        assert failed.status == "failed" and failed.error is not None and failed.error.message
        running = client.videos.create(model=f"{VIDEO}+job_s=30", prompt="slow")
        assert running.status == "queued" and running.progress == 0
        with pytest.raises(openai.ConflictError):
            client.videos.download_content(running.id)  # not finished yet
        deleted = client.videos.delete(running.id)  # cancels it at the provider, then forgets it
        assert deleted.deleted is True
        assert call(gateway, "GET", f"/jobs/{running.id}").status_code == 404
        assert call(gateway, "GET", "/generations", params={"id": running.id}).status_code == 404


def test_video_forms_are_validated(gateway: Cluster) -> None:
    for fields, param in (({"model": VIDEO}, "prompt"), ({"prompt": "x", "seconds": "5"}, "seconds"),
                          ({"prompt": "x", "size": "10x10"}, "size")):
        response = _post_form(gateway, _form("b0undary", fields), "b0undary")
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    broken = _post_form(gateway, b"--b0undary\r\nno headers here", "b0undary")
    assert broken.status_code == 400 and "multipart" in broken.json()["error"]["message"].lower()
    as_json = post(gateway, "/videos", json={"prompt": "json works too", "model": VIDEO})
    assert as_json.status_code == 200 and as_json.json()["object"] == "video"
    assert post(gateway, "/videos", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400


def test_an_uploaded_input_reference_and_idempotent_forms(gateway: Cluster) -> None:
    body = _form("fixedboundary", {"prompt": "animate this", "model": VIDEO}, image=b"\x89PNG\r\n\x1a\nfake")
    headers = {"Idempotency-Key": "video-form-1"}
    first = _post_form(gateway, body, "fixedboundary", headers=headers)
    assert first.status_code == 200, first.text
    again = _post_form(gateway, body, "fixedboundary", headers=headers)
    assert again.json()["id"] == first.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    other = _post_form(gateway, _form("fixedboundary", {"prompt": "another"}), "fixedboundary", headers=headers)
    assert other.status_code == 409


def test_videos_are_isolated_between_tenants(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice-video", spend_cap_cents=10_000)
    bob = create_sub_account(gateway, name="bob-video", spend_cap_cents=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        video = gateway.client(key=alice["key"]).videos.create_and_poll(model=VIDEO, prompt="mine")
        bobs = gateway.client(key=bob["key"]).videos
        for attempt in (lambda: bobs.retrieve(video.id), lambda: bobs.download_content(video.id),
                        lambda: bobs.delete(video.id)):
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert video.id not in [v.id for v in bobs.list()]
        chat = post(gateway, "/chat/completions", json={"model": "sim/gpt-sim", "webhook_url": "https://e.com/h",
                                                        "messages": [{"role": "user", "content": "hi"}]}).json()
        with pytest.raises(openai.NotFoundError):  # a job that is no video is not one here
            gateway.client().videos.retrieve(chat["id"])


