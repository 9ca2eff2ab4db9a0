"""Typed reads of SWITCHBOARD_* environment variables."""

import os
from collections.abc import Mapping
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


def router_in_edge(env: Mapping[str, str] | None = None) -> bool:
    """SWITCHBOARD_ROUTER_IN_EDGE=1: a launcher (`switchboard up`, the tests, the bench) runs each
    edge worker as `services.node`, an edge hosting a router that takes its requests without NATS,
    and starts no router processes. Off unless set, as in a cluster, where edges and routers scale
    apart; `switchboard up` sets it on (one machine), see tools/cli/up.py."""
    return (os.environ if env is None else env).get("SWITCHBOARD_ROUTER_IN_EDGE", "0") in ("1", "true", "yes", "on")


def workers(service: str) -> int:
    """SWITCHBOARD_<SERVICE>_WORKERS: processes of a scaled-out service on one machine; default one
    per CPU this process may run on (a Python process uses one core at a time).

    Measured on two cores shared with NATS, the ledger and the upstream (issue 10's notes): with
    the routers in the edges (`switchboard up`'s default) two edge workers serve about 40 % more
    non-stream requests/s at 64 connections than one, at about 35 % more CPU per request. With
    the two apart, one edge and one router beat two of each on non-stream throughput but a single
    process of either is the bottleneck of 1,000-2,000 concurrent streams."""
    return max(1, env_int(f"SWITCHBOARD_{service.upper()}_WORKERS", len(os.sched_getaffinity(0))))
