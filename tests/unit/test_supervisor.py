"""tools/cli/supervisor.py with real (tiny) child processes, ticked by hand."""

import sys
import time
from pathlib import Path

import msgspec

from libs.contracts.supervision import STATE_RESTARTING, STATE_RUNNING, STATE_STOPPED, SupervisorStatus
from tools.cli.processes import ManagedProcess, spawn
from tools.cli.supervisor import Backoff, Supervisor

FAST = Backoff(initial_s=0.05, max_s=0.2, reset_after_s=60)


def _python(tmp_path: Path, name: str, code: str) -> ManagedProcess:
    return spawn(name, [sys.executable, "-c", code], {}, tmp_path / "logs")


def _tick_until(supervisor: Supervisor, check, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, supervisor.status()
        supervisor.tick()
        time.sleep(0.01)


def _entry(supervisor: Supervisor, name: str):  # type: ignore[no-untyped-def]
    return next(p for p in supervisor.status().processes if p.name == name)


def test_a_process_dying_at_start_is_retried_with_doubling_backoff_and_its_reason_shown(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(tmp_path / "supervisor.json", tmp_path / "logs" / "supervisor.log", said.append, FAST)
    proc = supervisor.add(_python(tmp_path, "doomed", "import sys; print('no config here'); sys.exit(3)"))
    waits: list[float] = []
    while len(waits) < 5:
        supervisor.tick()
        entry = _entry(supervisor, "doomed")
        if entry.state == STATE_RESTARTING and (not waits or entry.restarts == len(waits)):
            waits.append(entry.backoff_s)
        time.sleep(0.01)
    assert waits == [0.05, 0.1, 0.2, 0.2, 0.2]  # doubling, capped: never a busy loop
    assert _entry(supervisor, "doomed").last_exit_code == 3
    exits = [line for line in said if "doomed exited (exit code 3)" in line]
    assert len(exits) == 5
    # The reason is on the terminal, once for as long as it stays the same.
    assert sum("no config here" in line for line in said) == 1
    assert "doomed restarted" in (tmp_path / "logs" / "supervisor.log").read_text()
    proc.stop()
    supervisor.tick()
    assert _entry(supervisor, "doomed").state == STATE_STOPPED


def test_crash_is_restarted_in_place_but_kill_and_stop_stay_down(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "supervisor.json", backoff=FAST)
    sleeper = "import time; time.sleep(60)"
    crashing = supervisor.add(_python(tmp_path, "crashing", sleeper))
    killed = supervisor.add(_python(tmp_path, "killed", sleeper))
    stopped = supervisor.add(_python(tmp_path, "stopped", sleeper))
    first_pid = crashing.popen.pid
    crashing.crash()
    killed.kill()
    stopped.stop(timeout_s=5)
    _tick_until(supervisor, lambda: _entry(supervisor, "crashing").restarts == 1)
    assert crashing.alive() and crashing.popen.pid != first_pid  # the same handle, a new process
    for _ in range(30):  # well past the backoff: the other two are left alone
        supervisor.tick()
        time.sleep(0.01)
    assert not killed.alive() and not stopped.alive()
    on_disk = msgspec.json.decode((tmp_path / "supervisor.json").read_bytes(), type=SupervisorStatus)
    by_name = {p.name: p for p in on_disk.processes}
    assert [p.name for p in on_disk.processes] == ["crashing", "killed", "stopped"]
    assert (by_name["crashing"].state, by_name["crashing"].pid, by_name["crashing"].last_exit_code) == (
        STATE_RUNNING, crashing.popen.pid, -9)
    assert (by_name["killed"].state, by_name["killed"].restarts, by_name["killed"].pid) == (STATE_STOPPED, 0, None)
    assert by_name["stopped"].state == STATE_STOPPED
    supervisor.stop_all(timeout_s=5)
    assert not crashing.alive()
    assert all(p.state == STATE_STOPPED for p in supervisor.status().processes)


def test_a_run_that_stayed_up_resets_the_backoff(tmp_path: Path) -> None:
    backoff = Backoff(initial_s=0.05, max_s=5, reset_after_s=0.2)
    supervisor = Supervisor(backoff=backoff)
    supervisor.add(_python(tmp_path, "steady", "import time; time.sleep(0.3)"))  # longer than reset_after_s
    waits: list[float] = []
    while len(waits) < 3:
        supervisor.tick()
        entry = _entry(supervisor, "steady")
        if entry.state == STATE_RESTARTING and entry.restarts == len(waits):
            waits.append(entry.backoff_s)
        time.sleep(0.01)
    assert waits == [0.05, 0.05, 0.05]
    supervisor.stop_all(timeout_s=5)


def test_stop_all_stops_the_last_started_first(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(echo=said.append, backoff=FAST)
    # Each writes its name to a shared file on SIGTERM: the order they were stopped in.
    order = tmp_path / "order"
    code = ("import signal, sys, time\n"
            "def bye(*_):\n"
            f"    open({str(order)!r}, 'a').write(sys.argv[1] + ' ')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n")
    procs = [supervisor.add(spawn(name, [sys.executable, "-c", code, name], {}, tmp_path / "logs"))
             for name in ("nats", "ledger", "edge")]
    for proc in procs:
        _tick_until(supervisor, lambda p=proc: "up" in (p.log_path.read_text() if p.log_path else ""))
    supervisor.stop_all(timeout_s=5)
    assert order.read_text().split() == ["edge", "ledger", "nats"]
    assert not any("exited" in line for line in said)  # a stop on purpose is no crash
