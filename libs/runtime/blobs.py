"""Blobs in the NATS Object Store, streamed in and out chunk by chunk.

nats-py's ObjectStore.put/get take or return the whole object (or a blocking file);
files and job results can be large, so this writes and reads the same on-stream format
(`$O.<bucket>.C.<nuid>` chunks, one rolled-up `$O.<bucket>.M.<name>` meta message)
from async iterators: memory stays at one chunk whatever the size. Objects written
here are ordinary Object Store objects (readable by `nats object get`), and the
reverse.
"""

import base64
import hashlib
import json
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext, api
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from libs.runtime.env import nats_replicas

CHUNK_SIZE = 128 * 1024
_READ_TIMEOUT_S = 10.0


class TooLarge(Exception):
    """The stream went past `max_bytes`; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


class BlobInfo(msgspec.Struct, frozen=True):
    name: str
    size: int
    sha256: str  # hex
    content_type: str = "application/octet-stream"


class BlobStore:
    def __init__(self, js: JetStreamContext, bucket: str) -> None:
        self._js = js
        self._bucket = bucket
        self._store: ObjectStore | None = None

    async def start(self) -> None:
        try:
            self._store = await self._js.object_store(self._bucket)
        except (BucketNotFoundError, NotFoundError):
            # As many copies as every stream and bucket (SWITCHBOARD_NATS_REPLICAS).
            self._store = await self._js.create_object_store(
                self._bucket, config=api.ObjectStoreConfig(replicas=nats_replicas()))

    @property
    def store(self) -> ObjectStore:
        assert self._store is not None, "BlobStore used before start()"
        return self._store

    async def put(self, name: str, chunks: AsyncIterable[bytes], content_type: str = "application/octet-stream",
                  max_bytes: int | None = None) -> BlobInfo:
        """Store what `chunks` yields under `name` (replacing any object of that name)."""
        store = self.store
        nuid = self._js._nc._nuid.next().decode()
        chunk_subject = f"$O.{self._bucket}.C.{nuid}"
        digest = hashlib.sha256()
        total = sent = 0
        pending = bytearray()
        try:
            async for piece in chunks:
                total += len(piece)
                if max_bytes is not None and total > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(piece)
                pending += piece
                while len(pending) >= CHUNK_SIZE:
                    await self._js.publish(chunk_subject, bytes(pending[:CHUNK_SIZE]))
                    del pending[:CHUNK_SIZE]
                    sent += 1
            if pending:
                await self._js.publish(chunk_subject, bytes(pending))
                sent += 1
        except BaseException:
            await self._js.purge_stream(store._stream, subject=chunk_subject)
            raise
        try:
            previous = await store.get_info(name)
        except (NotFoundError, ObjectNotFoundError):
            previous = None
        info = api.ObjectInfo(
            name=name, bucket=self._bucket, nuid=nuid, size=total, chunks=sent,
            mtime=datetime.now(UTC).isoformat(), headers={"Content-Type": [content_type]},
            digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
            options=api.ObjectMetaOptions(max_chunk_size=CHUNK_SIZE),
        )
        meta_subject = f"$O.{self._bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
        await self._js.publish(meta_subject, json.dumps(info.as_dict()).encode(),
                               headers={api.Header.ROLLUP: "sub"})
        if previous is not None and previous.nuid and previous.nuid != nuid:
            await self._js.purge_stream(store._stream, subject=f"$O.{self._bucket}.C.{previous.nuid}")
        return BlobInfo(name, total, digest.hexdigest(), content_type)

    async def put_bytes(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> BlobInfo:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.put(name, one(), content_type)

    async def info(self, name: str) -> BlobInfo | None:
        try:
            found = await self.store.get_info(name)
        except (NotFoundError, ObjectNotFoundError):
            return None
        if found.deleted:
            return None
        content_type = ((found.headers or {}).get("Content-Type") or ["application/octet-stream"])[0]
        digest = base64.urlsafe_b64decode((found.digest or "SHA-256=").removeprefix("SHA-256=")).hex()
        return BlobInfo(name, found.size or 0, digest, content_type)

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        """The object's bytes, chunk by chunk; raises LookupError when there is no such object."""
        try:
            found = await self.store.get_info(name)
        except (NotFoundError, ObjectNotFoundError) as exc:
            raise LookupError(name) from exc
        if found.deleted:
            raise LookupError(name)
        return self._read(found)

    async def _read(self, found: api.ObjectInfo) -> AsyncIterator[bytes]:
        if not found.size:
            return
        subscription = await self._js.subscribe(f"$O.{self._bucket}.C.{found.nuid}", ordered_consumer=True)
        try:
            while True:
                msg = await subscription.next_msg(timeout=_READ_TIMEOUT_S)
                yield msg.data
                if msg.metadata.num_pending == 0:
                    return
        finally:
            await subscription.unsubscribe()

    async def read(self, name: str) -> bytes:
        """A whole object, for the small ones (batch lines, JSON results)."""
        return b"".join([piece async for piece in await self.chunks(name)])

    async def delete(self, name: str) -> bool:
        try:
            await self.store.delete(name)
        except (NotFoundError, ObjectNotFoundError):
            return False
        return True
