"""Long-running generations shared by the video, music and 3D wires: the job table, its
state machine and the result files.

A job runs `job_s` seconds from its submit (directives ``job_s=S``, ``fail``, ``progress``,
``poll_status=S``; see directives.py), then is completed, or failed with ``fail``; a
cancelled job stays cancelled. What it makes follows from the model name: "music"/"audio"
in it makes a WAV, "3d"/"mesh"/"trellis"/"hunyuan" a GLB, anything else an MP4. Files are
small but valid-looking (a real header, then padding) and grow with the duration; they are
served, without auth like a CDN, at ``/_sim/files/{job_id}/{filename}``.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections import OrderedDict
from typing import Final, Literal

import msgspec
from aiohttp import web

from tools.upstream_sim.directives import Directives

Media = Literal["video", "music", "3d"]
JobState = Literal["running", "completed", "failed", "cancelled"]
VIDEO_BYTES_PER_SECOND: Final = 32_000
AUDIO_RATE: Final = 16_000  # 8-bit mono PCM: one byte per sample
MAX_JOBS: Final = 10_000
FAILURE_MESSAGE: Final = "The simulated generation failed (sim directive 'fail')."
_CONTENT_TYPES: Final = {"video": "video/mp4", "music": "audio/wav", "3d": "model/gltf-binary"}
_EXTENSIONS: Final = {"video": "mp4", "music": "wav", "3d": "glb"}


class SimJob(msgspec.Struct, kw_only=True):
    id: str
    wire: str  # openai | gemini | replicate | fal
    model: str  # without directives
    media: Media
    seconds: int
    prompt: str
    created: float  # time.monotonic()
    created_unix: int
    job_s: float = 0.0
    fail: bool = False
    report_progress: bool = False
    poll_status: int | None = None
    cancelled: bool = False
    options: dict[str, str] = {}  # wire-specific (an OpenAI video's size, ...)

    def state(self) -> JobState:
        if self.cancelled:
            return "cancelled"
        if time.monotonic() - self.created < self.job_s:
            return "running"
        return "failed" if self.fail else "completed"

    def fraction(self) -> float:
        """How far the job got, 0..1."""
        if self.job_s <= 0 or self.state() != "running":
            return 1.0 if self.state() == "completed" else 0.0
        return min(1.0, (time.monotonic() - self.created) / self.job_s)

    def percent(self) -> int:
        return round(self.fraction() * 100) if self.report_progress or self.state() == "completed" else 0

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.media]

    @property
    def filename(self) -> str:
        return f"output.{_EXTENSIONS[self.media]}"


class JobTable:
    """Jobs by id, the oldest dropped past MAX_JOBS so a long load test stays bounded."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, SimJob] = OrderedDict()

    def create(self, wire: str, model: str, directives: Directives, seconds: int, prompt: str,
               prefix: str = "") -> SimJob:
        job = SimJob(id=prefix + os.urandom(10).hex(), wire=wire, model=model, media=media_of(model),
                     seconds=seconds, prompt=prompt, created=time.monotonic(), created_unix=int(time.time()),
                     job_s=directives.job_s, fail=directives.fail, report_progress=directives.progress,
                     poll_status=directives.poll_status)
        self._jobs[job.id] = job
        while len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str, wire: str) -> SimJob | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.wire == wire else None

    def __len__(self) -> int:
        return len(self._jobs)


JOBS_KEY: Final = web.AppKey("upstream_sim_jobs", JobTable)


def media_of(model: str) -> Media:
    name = model.lower()
    if "music" in name or "audio" in name:
        return "music"
    if any(word in name for word in ("3d", "mesh", "trellis", "hunyuan")):
        return "3d"
    return "video"


def _mp4(seconds: int) -> bytes:
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")
    padding = max(0, seconds * VIDEO_BYTES_PER_SECOND - len(ftyp) - 8)
    return ftyp + struct.pack(">I4s", padding + 8, b"mdat") + bytes(padding)


def _wav(seconds: int) -> bytes:
    samples = seconds * AUDIO_RATE
    header = (b"RIFF" + struct.pack("<I", 36 + samples) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, AUDIO_RATE, AUDIO_RATE, 1, 8)
              + b"data" + struct.pack("<I", samples))
    return header + b"\x80" * samples  # 8-bit PCM silence


def _glb() -> bytes:
    document = json.dumps({"asset": {"version": "2.0", "generator": "upstream-sim"}, "scenes": [{"nodes": []}],
                           "scene": 0}).encode()
    document += b" " * (-len(document) % 4)  # chunks are 4-byte aligned
    body = bytes(2048)
    total = 12 + 8 + len(document) + 8 + len(body)
    return (b"glTF" + struct.pack("<II", 2, total) + struct.pack("<I4s", len(document), b"JSON") + document
            + struct.pack("<I4s", len(body), b"BIN\x00") + body)


def media_bytes(job: SimJob) -> bytes:
    if job.media == "music":
        return _wav(job.seconds)
    if job.media == "3d":
        return _glb()
    return _mp4(job.seconds)


def file_url(request: web.Request, job: SimJob) -> str:
    return f"{request.scheme}://{request.host}/_sim/files/{job.id}/{job.filename}"


async def serve_file(request: web.Request) -> web.StreamResponse:
    """GET /_sim/files/{job_id}/{filename}: a finished job's result (no auth, like a CDN)."""
    table = request.app[JOBS_KEY]
    job = next((j for wire in ("openai", "gemini", "replicate", "fal")
                if (j := table.get(request.match_info["job_id"], wire)) is not None), None)
    if job is None or job.state() != "completed" or request.match_info["filename"] != job.filename:
        return web.Response(status=404, text="no such file")
    return web.Response(body=media_bytes(job), headers={"Content-Type": job.content_type})
