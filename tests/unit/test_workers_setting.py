"""libs/runtime/env.py's workers() and router_in_edge(): how many edge and router processes
`switchboard up` runs, and whether an edge worker hosts a router."""

import os

import pytest

from libs.runtime.env import router_in_edge, workers
from tools.cli.up import edge_module


@pytest.mark.parametrize("cpus", [1, 2, 8])
def test_by_default_one_edge_and_one_router_per_cpu(monkeypatch: pytest.MonkeyPatch, cpus: int) -> None:
    monkeypatch.delenv("SWITCHBOARD_EDGE_WORKERS", raising=False)
    monkeypatch.delenv("SWITCHBOARD_ROUTER_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(cpus)))
    assert (workers("edge"), workers("router")) == (cpus, cpus)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("1", 1), ("0", 1), ("-2", 1)])
def test_the_setting_wins_and_is_never_below_one(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("SWITCHBOARD_ROUTER_WORKERS", value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(8)))
    assert workers("router") == expected


@pytest.mark.parametrize(("value", "module"), [(None, "services.edge"), ("0", "services.edge"), ("", "services.edge"),
                                               ("1", "services.node"), ("true", "services.node")])
def test_router_in_edge_picks_what_an_edge_worker_runs(value: str | None, module: str) -> None:
    env = {} if value is None else {"SWITCHBOARD_ROUTER_IN_EDGE": value}
    assert edge_module(env) == module
    assert router_in_edge(env) is (module == "services.node")
