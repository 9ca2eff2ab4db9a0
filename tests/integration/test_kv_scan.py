"""The KV scan behind every listing (files, jobs, batches, webhooks) returns exactly what is
stored under its filter, every time: a scan that reported "nothing stored" while values were
in flight made file listings flaky."""

import asyncio

import nats

from libs.runtime.kv_scan import scan_all
from tests.integration.cluster import Cluster


async def _scans(url: str, rounds: int) -> tuple[list[list[bytes]], list[bytes], list[bytes]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="scan_test")
        for i in range(6):
            await kv.put(f"acct.f{i}", f"v{i}".encode())
        await kv.put("acct.f2", b"v2-new")  # only the last value of a key counts
        await kv.delete("acct.f5")
        await kv.put("other.f9", b"not mine")
        scans = [await scan_all(kv, "acct.*", bytes) for _ in range(rounds)]
        empty = await scan_all(kv, "nobody.*", bytes)
        for i in range(600):  # more than one fetch batch
            await kv.put(f"big.k{i:04d}", b"x")
        many = await scan_all(kv, "big.*", bytes)
        await js.delete_key_value("scan_test")
        return scans, empty, many
    finally:
        await nc.close()


def test_scan_returns_exactly_what_is_stored(gateway: Cluster) -> None:
    scans, empty, many = asyncio.run(_scans(gateway.nats.url, rounds=40))
    for found in scans:
        assert found == [b"v0", b"v1", b"v3", b"v4", b"v2-new"]  # stream order: f2's rewrite is last
    assert empty == []
    assert len(many) == 600
