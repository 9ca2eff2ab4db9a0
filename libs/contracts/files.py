"""Files and job results: their records (KV `sb_files`) and where their bytes live
(Object Store bucket `subjects.OBJ_FILES`).

Every object name starts with the owning account, so nothing is found through
another tenant's id; ids that reach a name are checked with `valid_id` first.
"""

import re
import secrets
from typing import Final, Literal

import msgspec

FILE_ID_PREFIX: Final = "file-"
PURPOSES: Final = ("batch", "batch_output", "fine-tune", "assistants", "user_data", "vision", "evals")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A job result's file name: what `GET /v1/files/jobs/{job_id}/{filename}` serves.
_FILENAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def valid_id(value: str) -> bool:
    """An id safe to put in a KV key or object name (no `.`, `*`, `>`, spaces, non-ASCII)."""
    return _ID.fullmatch(value) is not None


def valid_filename(value: str) -> bool:
    return _FILENAME.fullmatch(value) is not None and ".." not in value


def new_file_id() -> str:
    return FILE_ID_PREFIX + secrets.token_hex(12)


def file_object_name(account_id: str, file_id: str) -> str:
    return f"files/{account_id}/{file_id}"


def job_object_name(account_id: str, job_id: str, filename: str) -> str:
    return f"jobs/{account_id}/{job_id}/{filename}"


class FileRecord(msgspec.Struct, kw_only=True):
    """KV `sb_files`, key `<account>.<file id>`."""

    id: str
    account_id: str
    subaccount_id: str | None = None
    filename: str
    purpose: str
    bytes: int
    created_at: int  # unix seconds
    expires_at: int | None = None  # swept after this (retention)
    content_type: str = "application/octet-stream"
    object_name: str
    sha256: str = ""


class FileObject(msgspec.Struct, kw_only=True):
    """The public File (OpenAI's FileObject, the contract's File)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    expires_at: int | None = None
    status_details: str | None = None


def public(record: FileRecord) -> FileObject:
    return FileObject(id=record.id, bytes=record.bytes, created_at=record.created_at, filename=record.filename,
                      purpose=record.purpose, expires_at=record.expires_at)


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(FileRecord).decode
