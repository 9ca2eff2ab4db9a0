"""The simulator's long-running generations: directives, the job state machine, result files,
and each wire's own validation and errors (tools/upstream_sim/jobs.py and the four wires)."""

import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.unit.sim_server import Sim, running_sim
from tools.upstream_sim.directives import DirectiveError, parse_directives
from tools.upstream_sim.jobs import MAX_JOBS, JobTable, SimJob, media_bytes, media_of
from tools.upstream_sim.settings import SimSettings

KEY = "sim-key"


# --- directives and the state machine --------------------------------------------------------


def test_longrun_directives_parse() -> None:
    base, d = parse_directives("video-sim+job_s=2.5+fail+progress+poll_status=503", {}, SimSettings())
    assert base == "video-sim" and (d.job_s, d.fail, d.progress, d.poll_status) == (2.5, True, True, 503)
    _, d = parse_directives("video-sim", {"x-sim-job-s": "1", "x-sim-fail": "0"}, SimSettings())
    assert (d.job_s, d.fail, d.progress, d.poll_status) == (1.0, False, False, None)


@pytest.mark.parametrize("model", ["m+job_s=-1", "m+job_s=soon", "m+job_s", "m+poll_status=200",
                                   "m+poll_status=x", "m+jobs=1"])
def test_bad_longrun_directives(model: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives(model, {}, SimSettings())


def _job(table: JobTable, model: str = "video-sim", **directives: Any) -> SimJob:
    _, parsed = parse_directives(model + "".join(f"+{k}={v}" for k, v in directives.items()), {}, SimSettings())
    return table.create("openai", model, parsed, 4, "a cat")


def test_state_machine() -> None:
    table = JobTable()
    done = _job(table)
    assert done.state() == "completed" and done.percent() == 100
    running = _job(table, job_s=60)
    assert running.state() == "running" and running.percent() == 0  # no progress without the directive
    assert _job(table, job_s=60, progress=1).fraction() < 1
    failed = _job(table, fail=1)
    assert failed.state() == "failed" and failed.percent() == 0
    running.cancelled = True
    assert running.state() == "cancelled"


def test_table_is_per_wire_and_bounded() -> None:
    table = JobTable()
    first = _job(table)
    assert table.get(first.id, "openai") is first and table.get(first.id, "fal") is None
    for _ in range(MAX_JOBS):
        _job(table)
    assert len(table) == MAX_JOBS and table.get(first.id, "openai") is None


@pytest.mark.parametrize(("model", "media"), [("video-sim", "video"), ("meta/musicgen", "music"),
                                              ("fal-ai/stable-audio", "music"), ("fal-ai/trellis", "3d"),
                                              ("fal-ai/hunyuan3d/v2", "3d"), ("minimax/video-01", "video")])
def test_media_follows_the_model_name(model: str, media: str) -> None:
    assert media_of(model) == media


def test_result_files_are_valid_looking_and_grow_with_duration() -> None:
    table = JobTable()
    video = _job(table)
    data = media_bytes(video)
    assert data[4:8] == b"ftyp" and struct.unpack(">I", data[24:28])[0] == len(data) - 24
    video.seconds = 8
    assert len(media_bytes(video)) == 2 * len(data)
    music = _job(table, model="musicgen")
    wav = media_bytes(music)
    assert wav[:4] == b"RIFF" and struct.unpack("<I", wav[4:8])[0] == len(wav) - 8 and wav[8:12] == b"WAVE"
    glb = media_bytes(_job(table, model="trellis"))
    assert glb[:4] == b"glTF" and struct.unpack("<II", glb[4:12]) == (2, len(glb))


# --- the wires, over HTTP ---------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim(KEY) as running:
        yield running


async def _call(sim: Sim, method: str, path: str, headers: dict[str, str] | None = None,
                **kwargs: Any) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as http, http.request(method, sim.base_url + path, headers=headers,
                                                             allow_redirects=False, **kwargs) as resp:
        body = await resp.read()
        try:
            decoded: Any = await resp.json(content_type=None)
        except ValueError:
            decoded = body
        return resp.status, decoded, resp.headers


OPENAI = {"Authorization": f"Bearer {KEY}"}
GOOGLE = {"x-goog-api-key": KEY}
FAL = {"Authorization": f"Key {KEY}"}


async def test_openai_videos_lifecycle_and_validation(sim: Sim) -> None:
    status, video, _ = await _call(sim, "POST", "/v1/videos", OPENAI,
                                   json={"model": "video-sim+job_s=60", "prompt": "x", "seconds": "8"})
    assert status == 200 and video["status"] == "queued" and video["seconds"] == "8" and video["size"] == "720x1280"
    status, _, _ = await _call(sim, "GET", f"/v1/videos/{video['id']}/content", OPENAI)
    assert status == 404  # not ready
    status, deleted, _ = await _call(sim, "DELETE", f"/v1/videos/{video['id']}", OPENAI)
    assert status == 200 and deleted["deleted"] is True
    assert (await _call(sim, "GET", f"/v1/videos/{video['id']}", OPENAI))[0] == 404
    for body, param in (({"model": "m", "prompt": "x", "seconds": "5"}, "seconds"),
                        ({"model": "m", "prompt": "x", "size": "1x1"}, "size"),
                        ({"model": "m"}, "prompt"), ({"prompt": "x"}, "model")):
        status, error, _ = await _call(sim, "POST", "/v1/videos", OPENAI, json=body)
        assert status == 400 and error["error"]["param"] == param
    assert (await _call(sim, "POST", "/v1/videos", {"Authorization": "Bearer nope"},
                        json={"model": "m", "prompt": "x"}))[0] == 401


async def test_openai_videos_accepts_multipart(sim: Sim) -> None:
    form = aiohttp.FormData({"model": "video-sim", "prompt": "x", "seconds": "4", "size": "1280x720"},
                            default_to_multipart=True)
    status, video, _ = await _call(sim, "POST", "/v1/videos", OPENAI, data=form)
    assert status == 200 and video["size"] == "1280x720"
    status, data, headers = await _call(sim, "GET", f"/v1/videos/{video['id']}/content", OPENAI)
    assert status == 200 and headers["Content-Type"] == "video/mp4" and data[4:8] == b"ftyp"


async def test_veo_operation_download_redirects_to_storage(sim: Sim) -> None:
    status, started, _ = await _call(sim, "POST", "/v1beta/models/veo-sim:predictLongRunning", GOOGLE,
                                     json={"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 4}})
    assert status == 200 and started["name"].startswith("models/veo-sim/operations/")
    status, operation, _ = await _call(sim, "GET", f"/v1beta/{started['name']}", GOOGLE)
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    status, _, headers = await _call(sim, "GET", uri.removeprefix(sim.base_url), GOOGLE)
    assert status == 302 and headers["Location"].startswith("/_sim/files/")
    assert (await _call(sim, "GET", uri.removeprefix(sim.base_url)))[0] == 403  # the key is required
    status, error, _ = await _call(sim, "POST", "/v1beta/models/veo-sim:predictLongRunning", GOOGLE,
                                   json={"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 0}})
    assert status == 400 and "durationSeconds" in error["error"]["message"]


async def test_veo_cancel_ends_the_operation_cancelled(sim: Sim) -> None:
    _, started, _ = await _call(sim, "POST", "/v1beta/models/veo-sim+job_s=60:predictLongRunning", GOOGLE,
                                json={"instances": [{"prompt": "x"}]})
    assert (await _call(sim, "POST", f"/v1beta/{started['name']}:cancel", GOOGLE, json={}))[0] == 200
    _, operation, _ = await _call(sim, "GET", f"/v1beta/{started['name']}", GOOGLE)
    assert operation["done"] is True and operation["error"]["code"] == 1


async def test_replicate_predictions(sim: Sim) -> None:
    status, prediction, _ = await _call(sim, "POST", "/v1/models/meta/musicgen/predictions", OPENAI,
                                        json={"input": {"prompt": "x", "duration": 3}})
    assert status == 201 and prediction["status"] == "starting" and prediction["urls"]["cancel"].endswith("/cancel")
    _, prediction, _ = await _call(sim, "GET", f"/v1/predictions/{prediction['id']}", OPENAI)
    assert prediction["status"] == "succeeded" and prediction["output"].endswith(".wav")
    status, data, _ = await _call(sim, "GET", prediction["output"].removeprefix(sim.base_url))
    assert status == 200 and data[:4] == b"RIFF"  # no auth: a CDN URL
    status, by_version, _ = await _call(sim, "POST", "/v1/predictions", OPENAI,
                                        json={"version": "abc+job_s=60", "input": {"prompt": "x"}})
    assert status == 201
    _, cancelled, _ = await _call(sim, "POST", f"/v1/predictions/{by_version['id']}/cancel", OPENAI)
    assert cancelled["status"] == "canceled"
    for body in ({}, {"input": "x"}, {"input": {}}, {"input": {"duration": -1}}):
        path = "/v1/predictions" if body.get("input") == {} else "/v1/models/a/b/predictions"
        assert (await _call(sim, "POST", path, OPENAI, json=body))[0] == 422, body
    assert (await _call(sim, "GET", "/v1/predictions/nope", OPENAI))[0] == 404


async def test_fal_queue(sim: Sim) -> None:
    status, queued, _ = await _call(sim, "POST", "/fal/fal-ai/kling-video/v2.1/standard/text-to-video", FAL,
                                    json={"prompt": "x", "duration": "5"})
    assert status == 200 and queued["status"] == "IN_QUEUE"
    assert queued["status_url"].endswith(f"/fal/fal-ai/kling-video/requests/{queued['request_id']}/status")
    _, done, _ = await _call(sim, "GET", queued["status_url"].removeprefix(sim.base_url) + "?logs=1", FAL)
    assert done["status"] == "COMPLETED" and done["logs"] == []
    _, result, _ = await _call(sim, "GET", queued["response_url"].removeprefix(sim.base_url), FAL)
    assert result["video"]["content_type"] == "video/mp4" and result["video"]["file_size"] == 5 * 32_000
    status, answer, _ = await _call(sim, "PUT", queued["cancel_url"].removeprefix(sim.base_url), FAL)
    assert status == 400 and answer["status"] == "ALREADY_COMPLETED"
    assert (await _call(sim, "POST", "/fal/fal-ai/x", {"Authorization": f"Bearer {KEY}"}, json={}))[0] == 401
    assert (await _call(sim, "POST", "/fal/fal-ai/x", FAL, json={"duration": "long"}))[0] == 422


async def test_fal_failed_and_running_results(sim: Sim) -> None:
    _, failed, _ = await _call(sim, "POST", "/fal/fal-ai/video-sim+fail", FAL, json={"prompt": "x"})
    _, status, _ = await _call(sim, "GET", failed["status_url"].removeprefix(sim.base_url), FAL)
    assert status["status"] == "COMPLETED" and "failed" in status["error"]
    assert (await _call(sim, "GET", failed["response_url"].removeprefix(sim.base_url), FAL))[0] == 500
    _, running, _ = await _call(sim, "POST", "/fal/fal-ai/video-sim+job_s=60", FAL, json={"prompt": "x"})
    assert (await _call(sim, "GET", running["response_url"].removeprefix(sim.base_url), FAL))[0] == 400
    assert (await _call(sim, "PUT", running["cancel_url"].removeprefix(sim.base_url), FAL))[0] == 202
    _, cancelled, _ = await _call(sim, "GET", running["status_url"].removeprefix(sim.base_url), FAL)
    assert cancelled["status"] == "CANCELED"


async def test_files_are_served_only_for_finished_jobs(sim: Sim) -> None:
    _, running, _ = await _call(sim, "POST", "/fal/fal-ai/video-sim+job_s=60", FAL, json={"prompt": "x"})
    assert (await _call(sim, "GET", f"/_sim/files/{running['request_id']}/output.mp4"))[0] == 404
    assert (await _call(sim, "GET", "/_sim/files/nope/output.mp4"))[0] == 404
