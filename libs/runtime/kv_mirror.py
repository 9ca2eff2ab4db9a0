"""A local, always-current copy of a NATS KV bucket.

Services read shared account state (keys, sub-accounts, spend status) from
memory on the hot path and let a KV watch keep that memory current: a change
made anywhere reaches every replica in milliseconds. After a NATS reconnect
the watch is rebuilt from scratch, so no change (deletions included) can be
missed while the connection was down; the old copy keeps serving meanwhile.
"""

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from libs.runtime.background import BackgroundTask
from libs.runtime.env import nats_replicas

log = structlog.get_logger()
T = TypeVar("T")
_DELETES = ("DEL", "PURGE")


async def open_bucket(js: JetStreamContext, bucket: str, ttl_s: float | None = None,
                      replicas: int | None = None) -> KeyValue:
    """The bucket, created on first use; `ttl_s` makes every entry expire that long after its last write.

    `replicas` copies are kept (default SWITCHBOARD_NATS_REPLICAS: 1 on a single server, 3 on a cluster).
    """
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        copies = nats_replicas() if replicas is None else replicas
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=copies))


class KvMirror(Generic[T]):
    def __init__(self, bucket: str, decode: Callable[[bytes], T],
                 on_change: Callable[[], None] | None = None) -> None:
        self.bucket = bucket
        self.entries: dict[str, T] = {}
        self.synced = asyncio.Event()
        self.kv: KeyValue | None = None
        self._decode = decode
        self._on_change = on_change
        self._task = BackgroundTask("kv-mirror-watch")

    async def start(self, js: JetStreamContext) -> None:
        self.kv = await open_bucket(js, self.bucket)
        await self._watch()

    async def resync(self) -> None:
        if self.kv is None:
            return
        try:
            await self._watch()
        except Exception as exc:  # NATS may still be settling; the next reconnect retries
            log.warning("kv_resync_failed", bucket=self.bucket, error=repr(exc))

    async def stop(self) -> None:
        await self._task.stop()

    async def wait_for(self, key: str, present: bool = True, timeout_s: float = 5.0) -> bool:
        """Until our own write has come back through the watch (read-your-writes)."""
        return await self.wait_until(lambda entries: (key in entries) == present, timeout_s)

    async def wait_until(self, condition: Callable[[dict[str, T]], bool], timeout_s: float = 5.0) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not condition(self.entries):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _watch(self) -> None:
        assert self.kv is not None
        # The watcher's end-of-replay marker can arrive before the replayed values (it races
        # the delivery), so the replay also has to reach the stream's last message, which is
        # always the newest of its key and so always replayed.
        last_seq = (await self.kv._js.stream_info(self.kv._stream)).state.last_seq
        watcher = await self.kv.watchall()
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task.start(self._follow(watcher, loaded, last_seq))  # in place of the watch before, if any
        await asyncio.wait_for(asyncio.shield(loaded), timeout=10)

    async def _follow(self, watcher: KeyValue.KeyWatcher, loaded: asyncio.Future[None], last_seq: int) -> None:
        fresh: dict[str, T] = {}
        initial, marker, reached = True, False, 0
        try:
            async for entry in watcher:
                if entry is None:
                    marker = True
                else:
                    reached = max(reached, entry.revision or 0)
                    marker = marker or entry.delta == 0  # nothing left of the replay
                    self._apply(fresh if initial else self.entries, entry)
                if initial and marker and (reached >= last_seq or (entry is not None and entry.delta == 0)):
                    self.entries, initial = fresh, False
                    self.synced.set()
                    loaded.set_result(None)
                    self._changed()
                elif not initial and entry is not None:
                    self._changed()
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass

    def _apply(self, target: dict[str, T], entry: KeyValue.Entry) -> None:
        if entry.operation in _DELETES or not entry.value:
            target.pop(entry.key, None)
            return
        try:
            target[entry.key] = self._decode(entry.value)
        except msgspec.DecodeError:
            log.warning("bad_kv_record", bucket=self.bucket, key=entry.key)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
