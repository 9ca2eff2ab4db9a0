"""Reading every record under a KV key filter, filtered by the server.

Records are keyed `<account>.<id>` (or `<batch>.<line>`), so one account's records are
one subject filter: a watch on it costs that account's records, where nats-py's
`keys(filters=...)` would read every key of the bucket and filter client-side.
"""

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from nats.js.kv import KeyValue

T = TypeVar("T")


async def scan(kv: KeyValue, key_filter: str, decode: Callable[[bytes], T]) -> AsyncIterator[T]:
    """Each stored value under `key_filter` (e.g. "acct.*"), decoded; ends at what is stored now."""
    watcher = await kv.watch(key_filter, ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:  # the end of what is stored now
                return
            if entry.value:
                yield decode(entry.value)
    finally:
        await watcher.stop()


async def scan_all(kv: KeyValue, key_filter: str, decode: Callable[[bytes], T]) -> list[T]:
    return [value async for value in scan(kv, key_filter, decode)]
