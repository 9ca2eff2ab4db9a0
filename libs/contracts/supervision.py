"""What the process supervisor (`switchboard up`, the test fixture) tells the services it runs.

The supervisor writes a SupervisorStatus as JSON to the file named by
SUPERVISOR_STATUS_ENV after every change; each service's /readyz includes it, so
a restart is visible from the outside (and in the test fixture's assertions).
"""

from typing import Final

import msgspec

SUPERVISOR_STATUS_ENV: Final = "SWITCHBOARD_SUPERVISOR_STATUS"

STATE_RUNNING: Final = "running"
STATE_RESTARTING: Final = "restarting"  # exited unexpectedly, waiting out its backoff
STATE_STOPPED: Final = "stopped"  # stopped on purpose: not restarted


class ProcessStatus(msgspec.Struct):
    name: str
    state: str
    pid: int | None
    restarts: int  # how many times the supervisor started it again after an unexpected exit
    last_exit_code: int | None  # negative: killed by that signal (subprocess convention)
    up_since: float | None  # unix seconds of the current run's start; None while down
    backoff_s: float  # the delay before the next restart if it exits now


class SupervisorStatus(msgspec.Struct):
    supervisor_pid: int
    updated_at: float  # unix seconds
    processes: list[ProcessStatus]


class Readiness(msgspec.Struct):
    """The /readyz body when a supervisor status file is configured."""

    status: str  # "ready" | "not ready"
    supervisor: SupervisorStatus | None = None
    # Which process answered: several workers share one port (SO_REUSEPORT), and the
    # supervisor waits until it has heard "ready" from each of them.
    pid: int | None = None
