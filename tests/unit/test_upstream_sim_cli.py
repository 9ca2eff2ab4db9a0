"""`python -m tools.upstream_sim`: the command line announces its URL and honours its flags."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


async def test_cli_announces_and_serves() -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tools.upstream_sim", "--port", "0", "--api-key", "flag-key"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "SIM_API_KEY": "env-key", "SIM_HOST": "127.0.0.1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        prefix = "upstream_sim listening on http://127.0.0.1:"
        assert line.startswith(prefix)
        base = line.removeprefix("upstream_sim listening on ")
        async with aiohttp.ClientSession(base) as http:
            async with http.get("/healthz") as resp:
                assert resp.status == 200
            async with http.get("/v1/models", headers={"Authorization": "Bearer env-key"}) as resp:
                assert resp.status == 401  # the flag wins over the environment
            async with http.get("/v1/models", headers={"Authorization": "Bearer flag-key"}) as resp:
                assert resp.status == 200
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=5)
