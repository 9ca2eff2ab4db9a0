"""Retention: files past their `expires_at` and job results older than the retention period
(SWITCHBOARD_FILE_RETENTION_S, 7 days by default) are deleted, records and bytes, every
SWITCHBOARD_RETENTION_SWEEP_S (an hour by default).

Every jobs replica sweeps; that is safe because every step is a delete of something
already due, and deleting twice is a no-op. A file's record goes first, so it disappears
at once even if its bytes are removed only on the next sweep.
"""

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime

import msgspec
import structlog
from nats.js.errors import NotFoundError

from libs.contracts.ids import valid_id
from libs.runtime.background import BackgroundTask
from libs.runtime.env import env_float
from libs.runtime.files import FileStore, retention_s
from services.jobs.kinds import ApiOp, JobsContext
from services.jobs.worker import GiveUp, Handler

log = structlog.get_logger()
DEFAULT_SWEEP_S = 3600.0
_JOBS_PREFIX = "jobs/"
_FILES_PREFIX = "files/"


class Swept(msgspec.Struct):
    files: int = 0
    results: int = 0
    orphans: int = 0  # file bytes whose record never got written (an upload cut short)


def mtime_of(value: str | None) -> float | None:
    """An object's mtime (RFC 3339; the server writes nanoseconds, Python parses micro)."""
    if not value:
        return None
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class Retention:
    """A JobKind with no operations and no work of its own: a background sweep."""

    def __init__(self, ctx: JobsContext, sweep_s: float | None = None, retention: int | None = None) -> None:
        self.ops: Mapping[str, ApiOp] = {}
        self.runs: Mapping[str, Handler] = {}
        self.polls: Mapping[str, Handler] = {}
        self.give_up: Mapping[str, GiveUp] = {}
        self._ctx = ctx
        self._sweep_s = env_float("SWITCHBOARD_RETENTION_SWEEP_S", DEFAULT_SWEEP_S) if sweep_s is None else sweep_s
        self._retention_s = retention_s() if retention is None else retention
        self._files: FileStore | None = None
        self._task = BackgroundTask("jobs-retention")

    async def start(self) -> None:
        self._files = await FileStore.open(self._ctx.js, self._ctx.blobs, self._retention_s)
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept.files or swept.results or swept.orphans:
                    log.info("retention_swept", files=swept.files, results=swept.results, orphans=swept.orphans)
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS away, say: the next sweep catches up
                log.exception("retention_sweep_failed")
            await asyncio.sleep(self._sweep_s)

    async def sweep(self, now: float | None = None) -> Swept:
        assert self._files is not None, "Retention used before start()"
        now = time.time() if now is None else now
        swept = Swept()
        records: set[str] = set()
        async for record in self._files.all_records():
            if record.expires_at is not None and record.expires_at <= now:
                await self._files.delete(record)
                swept.files += 1
            else:
                records.add(record.object_name)
        try:
            objects = await self._ctx.blobs.store.list(ignore_deletes=True)
        except NotFoundError:  # an empty store
            return swept
        cutoff = now - self._retention_s
        for info in objects:
            name = info.name or ""
            mtime = mtime_of(info.mtime)
            if mtime is None or mtime > cutoff:
                continue
            if name.startswith(_JOBS_PREFIX):
                await self._ctx.blobs.delete(name)
                swept.results += 1
            elif name.startswith(_FILES_PREFIX) and name not in records and await self._orphan(name):
                await self._ctx.blobs.delete(name)
                swept.orphans += 1
        return swept

    async def _orphan(self, name: str) -> bool:
        """No record (checked again now: the set above may predate a record written since)."""
        assert self._files is not None
        parts = name.split("/")
        if len(parts) != 3 or not valid_id(parts[2]):
            return False  # not a name this store writes: leave it alone
        return await self._files.get(parts[1], parts[2]) is None
