"""Test helpers for files and job results: what the jobs service and the admin tooling would
write directly into NATS (job records, result objects, another account's key)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import nats

from libs.contracts import files, subjects
from libs.contracts.bus.inference import Principal
from libs.contracts.http import jobs as jobs_http
from libs.contracts.keys import SCOPE_INFERENCE, ApiKeyRecord, encode_record, hash_key, mint_key
from libs.runtime.blobs import BlobStore
from libs.runtime.kv_mirror import open_bucket
from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually

T = TypeVar("T")


def request(gateway: Cluster, method: str, path: str, key: str | None = None,
            headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """Like api.call, with extra headers (Range, Idempotency-Key, a raw Content-Type)."""
    merged = {"Authorization": f"Bearer {key or gateway.admin_key}", **(headers or {})}
    return httpx.request(method, f"{gateway.base_url}{path}", headers=merged, timeout=30, **kwargs)


def with_nats(gateway: Cluster, work: Callable[[Any], Awaitable[T]]) -> T:
    async def run() -> T:
        nc = await nats.connect(gateway.nats.url)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def write_job_result(gateway: Cluster, account_id: str, job_id: str, filename: str, data: bytes,
                     subaccount_id: str | None = None, content_type: str = "video/mp4") -> None:
    """As the jobs service and router do: a job record in KV `sb_jobs` and its result object."""

    async def work(js: Any) -> None:
        kv = await open_bucket(js, subjects.KV_JOBS)
        # A whole record, as the jobs service writes it: the same account's job list reads it too.
        now = int(time.time())
        record = jobs_http.JobRecord(id=job_id, account_id=account_id, subaccount_id=subaccount_id,
                                     principal=Principal(account_id, "key_test", subaccount_id), modality="video",
                                     model="sim/video-sim", body=b"{}", status="completed", created_at=now,
                                     updated_at=now)
        await kv.put(f"{account_id}.{job_id}", jobs_http.encode(record))
        await (await _blobs(js)).put_bytes(files.job_object_name(account_id, job_id, filename), data, content_type)

    with_nats(gateway, work)


async def _blobs(js: Any) -> BlobStore:
    blobs = BlobStore(js, subjects.OBJ_FILES)
    await blobs.start()
    return blobs


def put_object(gateway: Cluster, name: str, data: bytes) -> None:
    async def work(js: Any) -> None:
        await (await _blobs(js)).put_bytes(name, data)

    with_nats(gateway, work)


def delete_object(gateway: Cluster, name: str) -> None:
    async def work(js: Any) -> None:
        await (await _blobs(js)).delete(name)

    with_nats(gateway, work)


def object_names(gateway: Cluster) -> list[str]:
    async def work(js: Any) -> list[str]:
        try:
            return [info.name for info in await (await _blobs(js)).store.list(ignore_deletes=True)]
        except nats.js.errors.NotFoundError:
            return []

    return with_nats(gateway, work)


def other_account_key(gateway: Cluster, account_id: str = "acct_other") -> str:
    """A key of a second account (the gateway has no public API that makes accounts)."""
    key = mint_key()
    record = ApiKeyRecord(key_id=f"key_{account_id}", account_id=account_id, scopes=(SCOPE_INFERENCE,),
                          created_at=int(time.time()))

    async def work(js: Any) -> None:
        kv = await open_bucket(js, subjects.KV_API_KEYS)
        await kv.put(hash_key(key), encode_record(record))

    with_nats(gateway, work)
    eventually(lambda: call(gateway, "GET", "/files", key).status_code == 200)
    return key
