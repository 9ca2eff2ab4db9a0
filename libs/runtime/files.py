"""Files: the one implementation of "a record in KV `sb_files` plus its bytes in the Object
Store", shared by the edge (uploads, downloads, deletes) and the jobs service (batch output
and error files), so both write the same records and sweep the same way.

Bytes go in first and the record last: a record always points at a complete object, and a
write that fails half-way leaves no record (its blob is deleted, or swept by retention).
"""

import time
from collections.abc import AsyncIterable, AsyncIterator

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from libs.contracts import files, subjects
from libs.contracts.bus.inference import Principal
from libs.contracts.files import FileRecord
from libs.contracts.ids import valid_id
from libs.runtime.blobs import BlobInfo, BlobStore
from libs.runtime.env import env_int
from libs.runtime.kv_mirror import open_bucket
from libs.runtime.kv_scan import scan

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def retention_s() -> int:
    """How long a file or job result is kept: SWITCHBOARD_FILE_RETENTION_S, else 7 days."""
    return env_int("SWITCHBOARD_FILE_RETENTION_S", files.DEFAULT_RETENTION_S)


class StagedFile(msgspec.Struct, frozen=True):
    """Bytes stored under a fresh id, not yet visible as a file (no record)."""

    id: str
    account_id: str
    blob: BlobInfo


class FileStore:
    def __init__(self, kv: KeyValue, blobs: BlobStore, retention_s: int) -> None:
        self.kv = kv
        self.blobs = blobs
        self.retention_s = retention_s

    @classmethod
    async def open(cls, js: JetStreamContext, blobs: BlobStore, retention: int | None = None) -> "FileStore":
        """The store on `blobs` (already started), with the bucket `sb_files` created on first use."""
        kv = await open_bucket(js, subjects.KV_FILES)
        return cls(kv, blobs, retention_s() if retention is None else retention)

    async def stage(self, account_id: str, chunks: AsyncIterable[bytes], *,
                    content_type: str = DEFAULT_CONTENT_TYPE, max_bytes: int | None = None) -> StagedFile:
        """Stream `chunks` into a new object; raises blobs.TooLarge (nothing kept) past `max_bytes`."""
        file_id = files.new_file_id()
        blob = await self.blobs.put(files.file_object_name(account_id, file_id), chunks, content_type, max_bytes)
        return StagedFile(file_id, account_id, blob)

    async def commit(self, staged: StagedFile, *, subaccount_id: str | None, filename: str, purpose: str,
                     expires_at: int | None = None, created_at: int | None = None) -> FileRecord:
        """Make staged bytes a file: write its record. `expires_at` defaults to created + retention."""
        created = int(time.time()) if created_at is None else created_at
        record = FileRecord(
            id=staged.id, account_id=staged.account_id, subaccount_id=subaccount_id,
            filename=files.display_name(filename), purpose=purpose, bytes=staged.blob.size, created_at=created,
            expires_at=created + self.retention_s if expires_at is None else expires_at,
            content_type=staged.blob.content_type, object_name=staged.blob.name, sha256=staged.blob.sha256)
        try:
            await self.kv.put(files.file_key(staged.account_id, staged.id), files.encode_record(record))
        except BaseException:
            await self.discard(staged)
            raise
        return record

    async def discard(self, staged: StagedFile) -> None:
        await self.blobs.delete(staged.blob.name)

    async def save(self, account_id: str, subaccount_id: str | None, filename: str, purpose: str,
                   chunks: AsyncIterable[bytes], *, content_type: str = DEFAULT_CONTENT_TYPE,
                   max_bytes: int | None = None, expires_at: int | None = None) -> FileRecord:
        """Store a whole file in one call (stage + commit): what the jobs service uses for outputs."""
        staged = await self.stage(account_id, chunks, content_type=content_type, max_bytes=max_bytes)
        return await self.commit(staged, subaccount_id=subaccount_id, filename=filename, purpose=purpose,
                                 expires_at=expires_at)

    async def save_bytes(self, account_id: str, subaccount_id: str | None, filename: str, purpose: str,
                         data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE) -> FileRecord:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.save(account_id, subaccount_id, filename, purpose, one(), content_type=content_type)

    async def get(self, account_id: str, file_id: str) -> FileRecord | None:
        """The account's record, or None (unknown, or an id that could not be a key)."""
        if not valid_id(file_id):
            return None
        try:
            entry = await self.kv.get(files.file_key(account_id, file_id))
        except KeyNotFoundError:
            return None
        return files.decode_record(entry.value) if entry.value else None

    async def find(self, principal: Principal, file_id: str) -> FileRecord | None:
        """The record if this caller may see it: same account, and its own when a sub-account calls."""
        record = await self.get(principal.account_id, file_id)
        if record is None or not files.visible_to(record, principal.account_id, principal.subaccount_id):
            return None
        return record

    async def list(self, principal: Principal) -> list[FileRecord]:
        """The caller's visible files, oldest first."""
        # A watch on the account's keys: the server filters, so the cost is this account's records.
        found = [record async for record in scan(self.kv, f"{principal.account_id}.*", files.decode_record)
                 if files.visible_to(record, principal.account_id, principal.subaccount_id)]
        # Stable on the scan's order (the stream's: creation order, files never change), so files
        # made within one second keep the order they were made in.
        found.sort(key=lambda r: r.created_at)
        return found

    async def chunks(self, record: FileRecord) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk; LookupError when its object is gone."""
        return await self.blobs.chunks(record.object_name)

    async def read(self, record: FileRecord) -> bytes:
        """A whole (small) file: batch input lines, say."""
        return await self.blobs.read(record.object_name)

    async def delete(self, record: FileRecord) -> None:
        """Record first, so the file disappears at once; then its bytes. Safe to repeat."""
        await self.kv.delete(files.file_key(record.account_id, record.id))
        await self.blobs.delete(record.object_name)

    async def all_records(self) -> AsyncIterator[FileRecord]:
        """Every account's records (the retention sweep)."""
        async for value in scan(self.kv, ">", bytes):
            try:
                yield files.decode_record(value)
            except msgspec.DecodeError:
                continue
