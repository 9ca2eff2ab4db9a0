"""libs/runtime/metrics.py and metrics_dir.py: two worker processes sharing one
PROMETHEUS_MULTIPROC_DIR and one health port (SO_REUSEPORT, as `switchboard up` runs them):
whichever answers /metrics shows the sum; a dead worker's live gauges leave it, its counts stay.
Also the single-process mode and the supervisor's restart counts."""

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.contracts.supervision import SUPERVISOR_STATUS_ENV, ProcessStatus, SupervisorStatus
from libs.runtime.metrics import Metrics
from libs.runtime.metrics_dir import MULTIPROC_ENV, forget_process, fresh_multiprocess_dir, service_env
from tools.cli.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKER = textwrap.dedent("""
    import asyncio, sys
    from libs.runtime.health import start_health_server
    from libs.runtime.metrics import Metrics

    async def main() -> None:
        port, amount = int(sys.argv[1]), float(sys.argv[2])
        metrics = Metrics("worker")
        metrics.counter("t_calls", "Calls.", ("kind",)).labels("a").inc(amount)
        metrics.gauge("t_open", "Open now.", (), "livesum").set(amount)
        metrics.histogram("t_seconds", "Seconds.", (), (1.0, 10.0)).observe(amount)
        runner = await start_health_server("127.0.0.1", port, lambda: True, metrics)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


def _values(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels.get("le")}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[str]], dict[str, str]]]:
    port = free_port()
    env = service_env({**os.environ, "PYTHONPATH": str(ROOT)}, tmp_path, "worker")
    env.pop(SUPERVISOR_STATUS_ENV, None)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(port), amount], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for amount in ("3", "4")]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port, procs, env
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_one_scrape_shows_the_sum_over_the_workers(workers: tuple[int, list[subprocess.Popen[str]],
                                                                   dict[str, str]]) -> None:
    port, procs, env = workers
    # Each worker's counts reach the shared files within a second (metrics_buffer.py's timer)...
    deadline = time.monotonic() + 5
    while _values(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)["t_calls_total"] != 7:
        assert time.monotonic() < deadline, "a worker's counts never reached the shared files"
        time.sleep(0.1)
    # ...then a new connection each time: the kernel spreads them over both workers, each answers the same sum.
    for _ in range(6):
        values = _values(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        assert values["t_calls_total"] == 7 and values["t_open"] == 7
        assert values["t_seconds_count"] == 2 and values["t_seconds_sum"] == 7
    procs[0].kill()
    procs[0].wait()
    forget_process(procs[0].pid, env)  # what the supervisor does when it sees a worker exit
    values = _values(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    assert values["t_open"] == 4  # the dead worker's streams are not open any more
    assert values["t_calls_total"] == 7 and values["t_seconds_count"] == 2  # what it counted did happen


def test_a_fresh_folder_forgets_the_last_run(tmp_path: Path) -> None:
    first = fresh_multiprocess_dir(tmp_path, "edge")
    (first / "counter_123.db").write_bytes(b"stale")
    again = fresh_multiprocess_dir(tmp_path, "edge")
    assert again == tmp_path / "metrics" / "edge" and list(again.iterdir()) == []
    env = service_env({"A": "1"}, tmp_path, "router")
    assert env == {"A": "1", MULTIPROC_ENV: str(tmp_path / "metrics" / "router")}
    forget_process(123, {})  # single-process mode: nothing to tidy
    forget_process(123, {MULTIPROC_ENV: str(tmp_path / "gone")})


def test_single_process_metrics_are_this_objects_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    one, two = Metrics("a"), Metrics("b")
    # Same names on two objects (two apps built in one test process) do not clash.
    one.counter("t_things", "Things.").inc(2)
    two.counter("t_things", "Things.").inc(5)
    assert _values(one.render().decode())["t_things_total"] == 2
    assert _values(two.render().decode())["t_things_total"] == 5
    assert "t_things_created" not in one.render().decode()


def test_supervisor_restarts_are_the_services_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status = tmp_path / "supervisor.json"
    processes = [ProcessStatus(name=name, state="running", pid=1, restarts=restarts, last_exit_code=None,
                               up_since=0.0, backoff_s=0.5)
                 for name, restarts in (("router", 2), ("router-2", 1), ("routerx", 9), ("edge", 4))]
    status.write_bytes(msgspec.json.encode(SupervisorStatus(supervisor_pid=1, updated_at=0.0, processes=processes)))
    monkeypatch.setenv(SUPERVISOR_STATUS_ENV, str(status))
    families = {f.name: f for f in text_string_to_metric_families(Metrics("router").render().decode())}
    restarts = {s.labels["process"]: s.value for s in families["switchboard_supervisor_restarts"].samples}
    assert restarts == {"router": 2, "router-2": 1}
    status.write_text("{not json")
    assert "switchboard_supervisor_restarts_total{" not in Metrics("router").render().decode()
