"""Snapshot retention: request bodies are kept SWITCHBOARD_SNAPSHOT_RETENTION_DAYS
(default 30), then deleted.

The ledger prunes once at start, so a ledger that was down catches up at once,
and then every hour: retention is in days, so an hour late is no matter, and
every ledger replica pruning is harmless (deleting what is gone deletes nothing).
The ClickHouse store expires snapshots by its table TTL instead (see
ClickHouseUsageStore.prune_snapshots).
"""

import asyncio
import time

import structlog

from libs.runtime.background import BackgroundTask
from libs.runtime.env import env_float
from services.ledger.stores.base import UsageStore

log = structlog.get_logger()
_DAY_MS = 86_400_000
DEFAULT_RETENTION_DAYS = 30.0
PRUNE_INTERVAL_S = 3600.0


def retention_days() -> float:
    days = env_float("SWITCHBOARD_SNAPSHOT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    if days <= 0:
        # Zero would delete every snapshot each hour: almost surely a mistake, and
        # opting out of snapshots is done where they are captured, not here.
        raise SystemExit(f"switchboard: SWITCHBOARD_SNAPSHOT_RETENTION_DAYS must be positive, got {days}")
    return days


class SnapshotRetention:
    def __init__(self, store: UsageStore, days: float, interval_s: float = PRUNE_INTERVAL_S) -> None:
        self._store = store
        self._retention_ms = int(days * _DAY_MS)
        self._interval_s = interval_s
        self._task = BackgroundTask("snapshot-retention")

    def start(self) -> None:
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()

    async def run_once(self, now_ms: int) -> None:
        await self._store.prune_snapshots(now_ms - self._retention_ms)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once(int(time.time() * 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store briefly unavailable: the next round retries
                log.warning("snapshot_prune_failed", error=repr(exc))
            await asyncio.sleep(self._interval_s)
