"""Python's cyclic garbage collector, set for a long-running server.

With the interpreter's defaults (a young collection every 700 net allocations) a gateway at
thousands of requests per second collects hundreds of times a second, and each full collection
walks every tracked object, the imported modules and the catalog included. Moving what exists at
start-up out of the collector's way (`gc.freeze`) and collecting the young generation less often
cuts both. Reference counting still frees almost everything at once; only cycles wait longer.

SWITCHBOARD_GC=default keeps the interpreter's settings (for an A/B). A collection that holds the
event loop for SWITCHBOARD_GC_LOG_MS (default 50) or more is logged as `gc_pause`.
"""

import gc
import time
from collections.abc import Callable

import structlog

from libs.runtime.env import env_float, env_str

_YOUNG_THRESHOLD = 20_000  # net allocations between young collections (the default is 700)
_OLDER_THRESHOLDS = (20, 20)


def tune_gc() -> None:
    """Call once the process has imported and built what it keeps for its lifetime."""
    if env_str("SWITCHBOARD_GC", "tuned") != "default":
        gc.collect()
        gc.freeze()
        gc.set_threshold(_YOUNG_THRESHOLD, *_OLDER_THRESHOLDS)
    gc.callbacks.append(_pause_logger(env_float("SWITCHBOARD_GC_LOG_MS", 50.0) / 1000))


def _pause_logger(slow_s: float) -> Callable[[str, dict[str, int]], None]:
    started = [0.0]
    log = structlog.get_logger()

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        if took >= slow_s:
            log.warning("gc_pause", ms=round(took * 1000, 1), generation=info.get("generation"),
                        collected=info.get("collected"))

    return on_gc
