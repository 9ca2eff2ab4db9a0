"""Keeping the gateway's processes running: a process that exits unexpectedly is restarted.

Used by `switchboard up` (ticked from its main loop) and by the integration-test fixture
(ticked from a background thread), so tests see exactly the supervision users get.

Restarts wait out an exponential backoff (0.5 s doubling to 30 s), reset once a run has
stayed up for 30 s, so a process that dies at start is retried slowly instead of in a busy
loop. Each exit and restart is logged to the terminal and to `logs/supervisor.log`, with the
dying process's last log lines, and written to a status file every service's /readyz shows.
A process stopped on purpose (`ManagedProcess.stop()` / `kill()`) is never restarted.
"""

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from libs.contracts.supervision import (
    STATE_RESTARTING,
    STATE_RUNNING,
    STATE_STOPPED,
    ProcessStatus,
    SupervisorStatus,
)
from libs.runtime.metrics_dir import forget_process
from tools.cli.processes import ManagedProcess

TAIL_LINES = 8


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 30.0  # a run this long was healthy: the next crash restarts quickly again

    def after(self, delay_s: float) -> float:
        return min(delay_s * 2, self.max_s)


@dataclass
class _Watch:
    """The supervisor's bookkeeping for one process."""

    proc: ManagedProcess
    next_delay_s: float
    started_at: float = field(default_factory=time.monotonic)
    up_since: float | None = field(default_factory=time.time)
    restarts: int = 0
    last_exit_code: int | None = None
    restart_at: float | None = None  # monotonic time of the pending restart
    waiting_s: float = 0.0  # the delay of the pending restart
    stopped: bool = False
    shown_tail: list[str] = field(default_factory=list)

    def status(self) -> ProcessStatus:
        if self.stopped:
            state = STATE_STOPPED
        elif self.restart_at is not None:
            state = STATE_RESTARTING
        else:
            state = STATE_RUNNING
        running = state == STATE_RUNNING
        return ProcessStatus(
            name=self.proc.name, state=state, pid=self.proc.popen.pid if running else None,
            restarts=self.restarts, last_exit_code=self.last_exit_code,
            up_since=self.up_since if running else None,
            backoff_s=self.waiting_s if state == STATE_RESTARTING else self.next_delay_s)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Watches ManagedProcesses in the order they were added and restarts those that die."""

    def __init__(self, status_path: Path | None = None, log_path: Path | None = None,
                 echo: Callable[[str], None] | None = None, backoff: Backoff | None = None) -> None:
        self.status_path = status_path
        self._log_path = log_path
        self._echo = echo
        self._backoff = backoff or Backoff()
        self._watches: dict[str, _Watch] = {}  # by name, in start order
        self._lock = threading.Lock()  # tick() and add() may run on different threads (test fixture)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, proc: ManagedProcess) -> ManagedProcess:
        """Supervise `proc` from now on; a process of the same name replaces the old entry."""
        with self._lock:
            self._watches.pop(proc.name, None)
            self._watches[proc.name] = _Watch(proc, self._backoff.initial_s)
            self._write_status()
        return proc

    def status(self) -> SupervisorStatus:
        with self._lock:
            return self._status()

    def tick(self) -> None:
        """Notice exits, restart what is due; never blocks on a process."""
        with self._lock:
            now = time.monotonic()
            changed = [self._check(watch, now) for watch in self._watches.values()]
            if any(changed):
                self._write_status()

    def run_until(self, done: Callable[[], bool], interval_s: float = 0.2) -> None:
        while not done():
            self.tick()
            time.sleep(interval_s)

    def start_background(self, interval_s: float = 0.1) -> None:
        """Tick on a daemon thread (the test fixture, whose main thread runs the tests)."""
        self._halt.clear()
        self._thread = threading.Thread(target=self._background, args=(interval_s,),
                                        name="switchboard-supervisor", daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every process for good, the last started first (the edge before NATS)."""
        self.stop_background()
        with self._lock:
            watches = list(self._watches.values())
        for watch in reversed(watches):
            watch.proc.stop(timeout_s=timeout_s)
        self.tick()

    def _background(self, interval_s: float) -> None:
        while not self._halt.wait(interval_s):
            self.tick()

    def _check(self, watch: _Watch, now: float) -> bool:
        """Advance one process's state; True when its status changed."""
        proc = watch.proc
        if not proc.wanted:
            if watch.stopped:
                return False
            watch.stopped, watch.restart_at, watch.up_since = True, None, None
            if proc.popen.poll() is not None:
                watch.last_exit_code = proc.popen.returncode
            return True
        if watch.restart_at is not None:
            if now < watch.restart_at or not proc.respawn():
                return False
            watch.restarts += 1
            watch.restart_at, watch.started_at, watch.up_since = None, now, time.time()
            self._say(f"{proc.name} restarted (pid {proc.popen.pid}, restart #{watch.restarts})")
            return True
        code = proc.popen.poll()
        if code is None:
            return False
        forget_process(proc.popen.pid, proc.env)  # before a new worker of the service comes
        ran_s = now - watch.started_at
        if ran_s >= self._backoff.reset_after_s:
            watch.next_delay_s = self._backoff.initial_s
        watch.waiting_s = watch.next_delay_s
        watch.next_delay_s = self._backoff.after(watch.waiting_s)
        watch.restart_at = now + watch.waiting_s
        watch.last_exit_code, watch.up_since = code, None
        self._say(f"{proc.name} exited ({describe_exit(code)}) after {ran_s:.1f}s; "
                  f"restarting in {watch.waiting_s:g}s")
        tail = proc.last_log_lines(TAIL_LINES)
        # A process failing the same way at every start shows its reason once, not every few seconds.
        if tail and tail != watch.shown_tail:
            watch.shown_tail = tail
            self._say(f"  last lines of {proc.log_path}:\n" + "\n".join(f"    {line}" for line in tail))
        return True

    def _say(self, message: str) -> None:
        line = f"switchboard: {message}"
        if self._echo is not None:
            self._echo(line)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._log_path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    def _status(self) -> SupervisorStatus:
        return SupervisorStatus(supervisor_pid=os.getpid(), updated_at=time.time(),
                                processes=[watch.status() for watch in self._watches.values()])

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        # Written aside and renamed: a /readyz reading it concurrently sees the old or the new, never half.
        tmp = self.status_path.with_name(self.status_path.name + ".tmp")
        tmp.write_bytes(msgspec.json.encode(self._status()))
        os.replace(tmp, self.status_path)
