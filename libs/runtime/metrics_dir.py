"""The folder a service's workers share for prometheus_client's multiprocess mode.

`switchboard up` gives each service its own PROMETHEUS_MULTIPROC_DIR (`<data dir>/metrics/<service>/`),
emptied before the service's first worker starts, so /metrics sums exactly the workers of this run
of that service. Kept apart from libs/runtime/metrics.py so the supervisor, which only prepares and
tidies the folder, imports nothing of the services' stack.
"""

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def fresh_multiprocess_dir(data_dir: Path, service: str) -> Path:
    """`<data_dir>/metrics/<service>/`, emptied: files of an earlier run's workers (other pids)
    would otherwise be summed into this run's counters for ever."""
    path = data_dir / "metrics" / service
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def service_env(env: Mapping[str, str], data_dir: Path, service: str) -> dict[str, str]:
    """`env` for the workers of `service`, with their own fresh multiprocess folder."""
    return {**env, MULTIPROC_ENV: str(fresh_multiprocess_dir(data_dir, service))}


def forget_process(pid: int, env: Mapping[str, str]) -> None:
    """A worker that exited: its live gauges (open streams, lag) leave the sums. Its counters and
    histograms stay, since what it counted did happen."""
    path = env.get(MULTIPROC_ENV)
    if path and Path(path).is_dir():
        mark_process_dead(pid, path)
