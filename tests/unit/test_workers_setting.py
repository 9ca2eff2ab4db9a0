"""libs/runtime/env.py's workers(): how many edge and router processes `switchboard up` runs."""

import os

import pytest

from libs.runtime.env import workers


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
