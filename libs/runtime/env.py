"""Typed reads of SWITCHBOARD_* environment variables."""

import os
from pathlib import Path


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise SystemExit(f"switchboard: {name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise SystemExit(f"switchboard: {name} must be a number, got {value!r}") from exc


def data_dir() -> Path:
    """Where embedded state lives (`.data/` under the working directory by default)."""
    path = Path(env_str("SWITCHBOARD_DATA_DIR", ".data")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def nats_url() -> str:
    """One server's URL, or a comma-separated list of a cluster's (connect_nats takes either)."""
    return env_str("SWITCHBOARD_NATS_URL", "nats://127.0.0.1:4222")


def nats_replicas() -> int:
    """How many copies JetStream keeps of every stream, KV bucket and object store we create.

    1 on a single server; 3 on a cluster (SWITCHBOARD_NATS_REPLICAS), so losing a node loses no data.
    """
    replicas = env_int("SWITCHBOARD_NATS_REPLICAS", 1)
    if not 1 <= replicas <= 5:  # JetStream's own limit
        raise SystemExit(f"switchboard: SWITCHBOARD_NATS_REPLICAS must be 1 to 5, got {replicas}")
    return replicas


def workers(service: str) -> int:
    """SWITCHBOARD_<SERVICE>_WORKERS: processes of a scaled-out service on one machine. By default
    the router gets one per CPU this process may run on and the edge half as many (at least one).

    Why not one of each per CPU: on two cores, where NATS and the ledger share them too, two edges
    and two routers served 1,400-1,600 non-stream requests/s at 32 connections where one of each
    served 2,260-2,340, at 2.1-2.5 ms of CPU per request (500 rps) against 1.4-1.6. Why two
    routers all the same: every stream's chunks pass through a router, and one router process
    was the bottleneck at 1,000 concurrent streams (time to first chunk p99 2.0 s, against
    1.5-1.6 s with two). One edge and two routers: 2,020 requests/s, 1.5 s (issue 10's note)."""
    cpus = len(os.sched_getaffinity(0))
    default = cpus if service == "router" else cpus // 2
    return max(1, env_int(f"SWITCHBOARD_{service.upper()}_WORKERS", default))
