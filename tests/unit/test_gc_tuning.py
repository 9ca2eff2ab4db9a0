"""The garbage collector's settings for service processes (libs/runtime/gc_tuning.py), each
check in a fresh interpreter: the settings are the process's own."""

import json
import os
import subprocess
import sys

_PROBE = """
import gc, json
from libs.runtime.gc_tuning import tune_gc
tune_gc()
gc.collect()
print("PROBE", json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def _probe(**env: str) -> tuple[dict[str, object], str]:
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, **env})
    (probe,) = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    return json.loads(probe.removeprefix("PROBE ")), done.stdout + done.stderr


def test_services_freeze_their_start_up_objects_and_collect_the_young_less_often() -> None:
    settings, _ = _probe(SWITCHBOARD_GC="tuned")
    assert settings["threshold"] == [20_000, 20, 20]
    assert isinstance(settings["frozen"], int) and settings["frozen"] > 10_000  # the imported modules


def test_the_interpreters_defaults_on_request() -> None:
    settings, _ = _probe(SWITCHBOARD_GC="default")
    assert settings == {"threshold": [700, 10, 10], "frozen": 0}


def test_a_slow_collection_is_logged() -> None:
    _, logged = _probe(SWITCHBOARD_GC_LOG_MS="0")  # every collection counts as slow
    assert "gc_pause" in logged and "generation" in logged
    _, quiet = _probe()
    assert "gc_pause" not in quiet
