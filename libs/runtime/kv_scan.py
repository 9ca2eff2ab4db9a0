"""Reading every record under a KV key filter, filtered by the server.

Records are keyed `<account>.<id>` (or `<batch>.<line>`), so one account's records are
one subject filter: a consumer on it costs that account's records, where nats-py's
`keys(filters=...)` would read every key of the bucket and filter client-side.

Not `kv.watch()`: its end-of-initial-values marker races the delivery. When the server
has pushed every value before the client reads consumer info, the watcher reports
"nothing stored" first and a scan that stops there returns an empty list (seen as a
flaky listing in CI). A pull consumer says how many values it holds, so a scan reads
exactly that many.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

T = TypeVar("T")

FETCH_BATCH = 256
FETCH_TIMEOUT_S = 2.0
_SCAN_SLACK = 10_000


async def scan(kv: KeyValue, key_filter: str, decode: Callable[[bytes], T]) -> AsyncIterator[T]:
    """Each stored value under `key_filter` (e.g. "acct.*"), decoded; ends at what is stored now."""
    # nats-py keeps a bucket's stream, subject prefix and context private; the names are the
    # KV protocol's own (KV_<bucket>, $KV.<bucket>.).
    js, stream, prefix = kv._js, kv._stream, kv._pre
    config = api.ConsumerConfig(
        name=f"scan-{uuid.uuid4().hex}", deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=api.AckPolicy.NONE, inactive_threshold=30.0, mem_storage=True, num_replicas=1)
    subscription = await js.pull_subscribe(f"{prefix}{key_filter}", stream=stream, config=config)
    try:
        remaining = (await subscription.consumer_info()).num_pending
        seen: set[str] = set()
        budget = remaining + _SCAN_SLACK  # writes landing during the scan are read too, up to this many
        while remaining > 0 and budget > 0:
            try:
                messages = await subscription.fetch(min(remaining, FETCH_BATCH), timeout=FETCH_TIMEOUT_S)
            except NatsTimeoutError:  # values expired or purged since the count
                return
            for message in messages:
                budget -= 1
                # The server's own count after this message: the opening count has been seen to
                # come up short of the keys there are (a listing missed a fresh record in CI).
                remaining = message.metadata.num_pending
                if message.subject in seen:  # rewritten during the scan: each key once
                    continue
                seen.add(message.subject)
                operation = message.headers.get(KV_OP) if message.headers else None
                if operation in (KV_DEL, KV_PURGE) or not message.data:
                    continue
                yield decode(message.data)
            if remaining == 0:  # confirm with the consumer itself before calling it the end
                remaining = (await subscription.consumer_info()).num_pending
    finally:
        await subscription.unsubscribe()
        with contextlib.suppress(Exception):  # the inactive threshold removes it anyway
            await js.delete_consumer(stream, config.name)


async def scan_all(kv: KeyValue, key_filter: str, decode: Callable[[bytes], T]) -> list[T]:
    return [value async for value in scan(kv, key_filter, decode)]
