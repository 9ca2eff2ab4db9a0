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
DEFAULT_RETENTION_S: Final = 7 * 24 * 3600  # SWITCHBOARD_FILE_RETENTION_S overrides it
MAX_DISPLAY_NAME: Final = 255
PURPOSES: Final = ("batch", "batch_output", "fine-tune", "assistants", "user_data", "vision", "evals")
# A job result's file name: what `GET /v1/files/jobs/{job_id}/{filename}` serves.
_FILENAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def valid_filename(value: str) -> bool:
    return _FILENAME.fullmatch(value) is not None and ".." not in value


def display_name(raw: str | None) -> str:
    """A client's file name made safe to show and to echo in headers: no path, no control
    characters, bounded. It is never part of a key or object name (the id is)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:MAX_DISPLAY_NAME] or "file"


def new_file_id() -> str:
    return FILE_ID_PREFIX + secrets.token_hex(12)


def file_object_name(account_id: str, file_id: str) -> str:
    return f"files/{account_id}/{file_id}"


def file_key(account_id: str, file_id: str) -> str:
    """The record's key in KV `sb_files`."""
    return f"{account_id}.{file_id}"


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
    # No `status_details`: deprecated, never set here, and a string (not null) in OpenAI's schema.


def visible_to(record: FileRecord, account_id: str, subaccount_id: str | None) -> bool:
    """A sub-account key sees only its own files; an account-level key sees all of the account's."""
    if record.account_id != account_id:
        return False
    return subaccount_id is None or record.subaccount_id == subaccount_id


def public(record: FileRecord) -> FileObject:
    return FileObject(id=record.id, bytes=record.bytes, created_at=record.created_at, filename=record.filename,
                      purpose=record.purpose, expires_at=record.expires_at)


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(FileRecord).decode


class FileList(msgspec.Struct, kw_only=True):
    """`GET /v1/files`: OpenAI's cursor page. `first_id` / `last_id` are required strings in
    OpenAI's schema (not nullable), so an empty page says "" rather than null."""

    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str = ""
    last_id: str = ""
    has_more: bool = False


class FileDeleted(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class SignedUrl(msgspec.Struct, kw_only=True):
    """`GET /v1/files/jobs/{job_id}/{filename}/signed`."""

    url: str
    expires_at: int


class JobOwner(msgspec.Struct):
    """The one field of a job record (KV `sb_jobs`, http/jobs.py) that decides who may read its results."""

    subaccount_id: str | None = None


decode_job_owner = msgspec.json.Decoder(JobOwner).decode
