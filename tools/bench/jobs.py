"""Async jobs created per second through the edge: POST /v1/videos/generations -> 202.

Starts NATS, one jobs replica and one edge (no router: only creation is measured), then
sends N creates from C concurrent connections and times until every one answered. Each
create is the whole path a client pays for: key check, admission, validation, the edge ->
jobs request/reply, the KV record, the JOBS work message. With no router, each job's first
submit finds no responders and is put off for a long poll interval (SWITCHBOARD_JOB_POLL_S
is set high), so the background work is one cheap attempt per job.
"""

import asyncio
import os
import time
from pathlib import Path

import aiohttp

from libs.contracts.keys import mint_key
from tools.cli.processes import free_port, start_module, start_nats, wait_http_ok

_BODY = {"prompt": "a lighthouse at dusk, slow pan", "model": "sim/video-sim", "duration": 4}


async def _drive(url: str, key: str, count: int, connections: int) -> tuple[float, int]:
    failures = 0
    remaining = iter(range(count))
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for _ in remaining:
            async with session.post(url, json=_BODY, headers=headers) as response:
                await response.read()
                failures += response.status != 202

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, json=_BODY, headers=headers) as warm:  # connections, KV buckets, streams
            await warm.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        return time.perf_counter() - started, failures


def measure(root: Path, count: int, connections: int = 16) -> dict[str, float]:
    logs = root / "logs"
    nats_port, edge_port, jobs_health = free_port(), free_port(), free_port()
    admin = mint_key()
    server = start_nats(root / "jobs", nats_port, logs)
    env = {**os.environ, "SWITCHBOARD_NATS_URL": f"nats://127.0.0.1:{nats_port}", "SWITCHBOARD_ADMIN_KEY": admin,
           "SWITCHBOARD_HTTP_PORT": str(edge_port), "SWITCHBOARD_JOBS_HEALTH_PORT": str(jobs_health),
           "SWITCHBOARD_DATA_DIR": str(root / "jobs"), "SWITCHBOARD_JOB_POLL_S": "600",
           "SWITCHBOARD_LOG_LEVEL": "warning"}
    procs = [server]
    try:
        procs.append(start_module("jobs", "services.jobs", env, logs))
        wait_http_ok(f"http://127.0.0.1:{jobs_health}/readyz", 30, procs[-1].popen)
        procs.append(start_module("edge", "services.edge", env, logs))
        wait_http_ok(f"http://127.0.0.1:{edge_port}/readyz", 30, procs[-1].popen)
        url = f"http://127.0.0.1:{edge_port}/v1/videos/generations"
        seconds, failures = asyncio.run(_drive(url, admin, count, connections))
    finally:
        for proc in reversed(procs):
            proc.stop()
    return {"jobs": count, "connections": connections, "seconds": round(seconds, 2),
            "jobs_per_s": round(count / seconds), "failures": failures}


if __name__ == "__main__":
    import tempfile

    print(measure(Path(tempfile.mkdtemp(prefix="switchboard-bench-jobs-")),
                  int(os.environ.get("BENCH_JOBS", "2000"))))
