"""The router's long-running side (video, music, 3D), driven over NATS as the jobs service does:
submit -> poll -> fetch into the Object Store -> one usage event per job, for each provider wire."""

import asyncio
import secrets
import time
from typing import Any

import msgspec
import nats
import pytest

from libs.contracts import subjects
from libs.contracts.bus.inference import Failure, Principal
from libs.contracts.bus.longrun import (
    OP_CANCEL,
    OP_FETCH,
    OP_POLL,
    OP_SUBMIT,
    LongRunHandle,
    LongRunRequest,
    LongRunStatus,
    decode_answer,
    encode,
)
from libs.contracts.keys import ADMIN_KEY_ID, ROOT_ACCOUNT
from libs.runtime.blobs import BlobStore
from tests.integration.api import call, generation
from tests.integration.cluster import Cluster, eventually

PRINCIPAL = Principal(ROOT_ACCOUNT, ADMIN_KEY_ID)
MARKUP = 1.05  # the default 5 %


def _job_id() -> str:
    return "job_" + secrets.token_hex(8)


class Bus:
    def __init__(self, gateway: Cluster) -> None:
        self.gateway = gateway
        self.tag = "lr-" + secrets.token_hex(6)

    def run(self, *steps: LongRunRequest) -> list[LongRunStatus | Failure]:
        async def go() -> list[LongRunStatus | Failure]:
            nc = await nats.connect(self.gateway.nats.url)
            try:
                return [decode_answer((await nc.request(subjects.INFER_LONGRUN, encode(step), timeout=15)).data)
                        for step in steps]
            finally:
                await nc.close()

        return asyncio.run(go())

    def one(self, step: LongRunRequest) -> LongRunStatus | Failure:
        return self.run(step)[0]

    def request(self, op: str, job_id: str, modality: str, handle: LongRunHandle | None = None, model: str = "",
                body: dict[str, Any] | None = None) -> LongRunRequest:
        return LongRunRequest(op=op, job_id=job_id, principal=PRINCIPAL, modality=modality, model=model,
                              body=msgspec.json.encode(body or {}), handle=handle, tag=self.tag)

    def submit(self, job_id: str, modality: str, model: str, body: dict[str, Any]) -> LongRunStatus:
        answer = self.one(self.request(OP_SUBMIT, job_id, modality, model=model, body=body))
        assert isinstance(answer, LongRunStatus), answer
        assert answer.state in ("queued", "processing") and answer.handle is not None
        return answer

    def until_done(self, job_id: str, modality: str, handle: LongRunHandle) -> LongRunStatus:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = self.one(self.request(OP_POLL, job_id, modality, handle))
            assert isinstance(answer, LongRunStatus), answer
            if answer.state in ("completed", "failed", "cancelled"):
                return answer
            time.sleep(0.1)
        raise AssertionError("the job never finished")

    def read_object(self, name: str) -> bytes:
        async def go() -> bytes:
            nc = await nats.connect(self.gateway.nats.url)
            try:
                blobs = BlobStore(nc.jetstream(), subjects.OBJ_FILES)
                await blobs.start()
                return await blobs.read(name)
            finally:
                await nc.close()

        return asyncio.run(go())

    def tag_total(self) -> dict[str, Any]:
        return call(self.gateway, "GET", "/usage/by-tag", params={"tag": self.tag}).json()["total"]


@pytest.fixture
def bus(gateway: Cluster) -> Bus:
    return Bus(gateway)


# (modality, model, body, provider, filename, magic, units, USD per unit)
CASES = [
    ("video", "openai/sora-2", {"prompt": "a cat", "seconds": "8"}, "openai", "video.mp4", b"ftyp", 8, 0.10),
    ("video", "sim/video-sim", {"prompt": "a cat", "duration": 3.2}, "sim", "video.mp4", b"ftyp", 4, 0.10),
    ("video", "google/veo-3.0-fast-generate-001", {"prompt": "a cat", "duration": 4}, "google", "video.mp4",
     b"ftyp", 4, 0.15),
    ("music", "replicate/meta/musicgen", {"prompt": "lofi", "duration": 5}, "replicate", "music.wav", b"RIFF",
     5, 0.0014),
    ("video", "fal/fal-ai/kling-video/v2.1/standard/text-to-video", {"prompt": "a cat", "duration": 5}, "fal",
     "video.mp4", b"ftyp", 5, 0.056),
    ("3d", "fal/fal-ai/trellis", {"prompt": "a teapot"}, "fal", "model.glb", b"glTF", 1, 0.02),
]


@pytest.mark.parametrize(("modality", "model", "body", "provider", "filename", "magic", "units", "usd"), CASES,
                         ids=[c[1] for c in CASES])
def test_submit_poll_fetch_stores_and_bills_once(bus: Bus, modality: str, model: str, body: dict[str, Any],
                                                 provider: str, filename: str, magic: bytes, units: int,
                                                 usd: float) -> None:
    job_id = _job_id()
    submitted = bus.submit(job_id, modality, model, body)
    assert submitted.handle is not None and submitted.handle.provider == provider
    assert submitted.handle.model == model
    done = bus.until_done(job_id, modality, submitted.handle)
    assert done.state == "completed" and done.error is None
    first, second = bus.run(bus.request(OP_FETCH, job_id, modality, done.handle),
                            bus.request(OP_FETCH, job_id, modality, done.handle))
    for fetched in (first, second):
        assert isinstance(fetched, LongRunStatus) and fetched.state == "completed", fetched
        assert [o.filename for o in fetched.outputs] == [filename]
        assert fetched.meta is not None and fetched.meta.usage is not None
        assert fetched.meta.usage.output_units == units and fetched.meta.provider == provider
    assert isinstance(first, LongRunStatus)
    output = first.outputs[0]
    assert output.object_name == f"jobs/{ROOT_ACCOUNT}/{job_id}/{filename}"
    data = bus.read_object(output.object_name)
    assert len(data) == output.bytes > 0 and magic in data[:12]
    expected = round(round(units * usd * 1_000_000) * MARKUP)
    row = generation(bus.gateway, job_id)
    assert row["operation"] == {"video": "video.generations", "music": "audio.music", "3d": "3d.generations"}[modality]
    assert row["model"] == model and row["cost"]["total_micros"] == expected
    assert first.meta is not None and first.meta.cost is not None and first.meta.cost.total_micros == expected
    # The repeated fetch is the same request id: stored and billed once.
    total = bus.tag_total()
    assert total["requests"] == 1 and total["cost_micros"] == expected


PASS_THROUGH = ["sim/video-sim", "google/veo-sim", "replicate/sim/video-sim", "fal/fal-ai/video-sim"]


@pytest.mark.parametrize("model", PASS_THROUGH)
def test_failure_at_the_provider_is_failed_with_its_reason_and_not_billed(bus: Bus, model: str) -> None:
    job_id = _job_id()
    submitted = bus.submit(job_id, "video", model + "+fail", {"prompt": "a cat", "duration": 4})
    assert submitted.handle is not None
    done = bus.until_done(job_id, "video", submitted.handle)
    assert done.state == "failed" and done.error is not None
    assert "simulated generation failed" in done.error.message and done.error.code == 502
    fetched = bus.one(bus.request(OP_FETCH, job_id, "video", submitted.handle))
    assert isinstance(fetched, LongRunStatus) and fetched.state == "failed" and fetched.outputs == []
    _assert_unbilled(bus, job_id)


@pytest.mark.parametrize("model", PASS_THROUGH)
def test_cancel_stops_the_job_and_nothing_is_billed(bus: Bus, model: str) -> None:
    job_id = _job_id()
    submitted = bus.submit(job_id, "video", model + "+job_s=60", {"prompt": "a cat", "duration": 4})
    cancelled = bus.one(bus.request(OP_CANCEL, job_id, "video", submitted.handle))
    assert isinstance(cancelled, LongRunStatus) and cancelled.state == "cancelled", cancelled
    _assert_unbilled(bus, job_id)


def _assert_unbilled(bus: Bus, job_id: str) -> None:
    """A later job of the same tag is billed; the first one never was."""
    sentinel = _job_id()
    submitted = bus.submit(sentinel, "video", "sim/video-sim", {"prompt": "x", "duration": 4})
    assert submitted.handle is not None
    bus.until_done(sentinel, "video", submitted.handle)
    assert isinstance(bus.one(bus.request(OP_FETCH, sentinel, "video", submitted.handle)), LongRunStatus)
    generation(bus.gateway, sentinel)
    assert call(bus.gateway, "GET", "/generations", params={"id": job_id}).status_code == 404
    assert bus.tag_total()["requests"] == 1


def test_auto_picks_the_cheapest_model_of_the_modality(bus: Bus) -> None:
    submitted = bus.submit(_job_id(), "3d", "auto", {"prompt": "a teapot"})
    assert submitted.handle is not None and submitted.handle.model == "fal/fal-ai/trellis"


def test_progress_is_reported_while_running(bus: Bus) -> None:
    job_id = _job_id()
    submitted = bus.submit(job_id, "video", "sim/video-sim+job_s=30+progress", {"prompt": "a cat"})

    def advanced() -> LongRunStatus | None:
        answer = bus.one(bus.request(OP_POLL, job_id, "video", submitted.handle))
        assert isinstance(answer, LongRunStatus)
        return answer if answer.state == "processing" and (answer.progress or 0) > 0 else None

    assert 0 < (eventually(advanced, 10).progress or 0) < 100
    bus.one(bus.request(OP_CANCEL, job_id, "video", submitted.handle))


@pytest.mark.parametrize(("modality", "model", "status", "param"), [
    ("video", "sim/gpt-sim", 400, "model"),  # a chat model
    ("music", "openai/sora-2", 400, "model"),  # a video model asked for music
    ("video", "nosuch/model", 404, "model"),
    ("video", "sim/video-sim+status=503", 502, None),  # the provider fails the submit
    ("hologram", "sim/video-sim", 400, "modality"),
])
def test_submit_refusals(bus: Bus, modality: str, model: str, status: int, param: str | None) -> None:
    answer = bus.one(bus.request(OP_SUBMIT, _job_id(), modality, model=model, body={"prompt": "a cat"}))
    assert isinstance(answer, Failure), answer
    assert answer.error.code == status and answer.error.param == param, answer.error


@pytest.mark.parametrize(("job_id", "body", "param"), [
    ("a.b", {"prompt": "x"}, "job_id"), ("*", {"prompt": "x"}, "job_id"), (">", {"prompt": "x"}, "job_id"),
    ("à", {"prompt": "x"}, "job_id"), ("j" * 300, {"prompt": "x"}, "job_id"),
    ("ok", {}, "prompt"), ("ok", {"prompt": "x", "duration": -1}, "duration"),
    ("ok", {"prompt": "x", "duration": 10_000}, "duration"), ("ok", {"prompt": "x", "seconds": "soon"}, "seconds"),
    ("ok", {"prompt": "x", "image_url": "file:///etc/passwd"}, "image_url"),
])
def test_bad_requests_are_400(bus: Bus, job_id: str, body: dict[str, Any], param: str) -> None:
    answer = bus.one(bus.request(OP_SUBMIT, job_id, "video", model="sim/video-sim", body=body))
    assert isinstance(answer, Failure) and answer.error.code == 400 and answer.error.param == param, answer


def test_malformed_body_and_missing_handle_are_400(bus: Bus) -> None:
    malformed = LongRunRequest(op=OP_SUBMIT, job_id=_job_id(), principal=PRINCIPAL, model="sim/video-sim",
                               body=b"{not json")
    missing = bus.request(OP_POLL, _job_id(), "video")
    unknown_op = bus.request("explode", _job_id(), "video")
    for answer in bus.run(malformed, missing, unknown_op):
        assert isinstance(answer, Failure) and answer.error.code == 400, answer


def test_poll_of_a_job_the_provider_does_not_know(bus: Bus) -> None:
    handle = LongRunHandle("sim", "sim/video-sim", "video-sim", "video_doesnotexist")
    answer = bus.one(bus.request(OP_POLL, _job_id(), "video", handle))
    assert isinstance(answer, Failure) and answer.error.code == 404
    gone = LongRunHandle("nowhere", "x/y", "y", "id")
    answer = bus.one(bus.request(OP_POLL, _job_id(), "video", gone))
    assert isinstance(answer, Failure) and answer.error.code == 503


def test_provider_5xx_on_poll_is_502(bus: Bus) -> None:
    job_id = _job_id()
    submitted = bus.submit(job_id, "video", "replicate/sim/video-sim+poll_status=500", {"prompt": "x"})
    answer = bus.one(bus.request(OP_POLL, job_id, "video", submitted.handle))
    assert isinstance(answer, Failure) and answer.error.code == 502 and answer.error.type == "provider_error"
