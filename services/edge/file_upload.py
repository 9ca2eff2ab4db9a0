"""`POST /v1/files`: a multipart upload streamed part by part straight into the Object Store.

The file part is never held whole in memory, so the size limit is the store's
(SWITCHBOARD_MAX_FILE_BYTES), not the request body limit. Fields may come in any order
(the openai SDK sends `purpose` before `file`; curl sends what it is given), so the bytes
are staged under a fresh id first and the record is written once every field is known;
any refusal after staging deletes the staged bytes.
"""

import time
from collections.abc import AsyncIterator

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.client_exceptions import ClientError

from libs.contracts import errors, files
from libs.contracts.bus.inference import Principal
from libs.runtime.blobs import CHUNK_SIZE, TooLarge
from libs.runtime.files import DEFAULT_CONTENT_TYPE, StagedFile
from services.edge import idempotency
from services.edge.errors import GatewayError
from services.edge.files_state import FILES
from services.edge.state import EDGE
from services.edge.validation import bounded_int

SCOPE = "POST /v1/files"
_MAX_FIELD = 1024
_ANCHOR = "expires_after[anchor]"
_SECONDS = "expires_after[seconds]"
_FIELDS = ("purpose", _ANCHOR, _SECONDS)
# OpenAI's bounds for expires_after.seconds: one hour to thirty days.
MIN_EXPIRES_AFTER_S = 3600
MAX_EXPIRES_AFTER_S = 30 * 24 * 3600


class _Upload(msgspec.Struct):
    staged: StagedFile | None = None
    filename: str = ""
    fields: dict[str, str] = {}


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, errors.INVALID_REQUEST, message, param=param)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_SIZE):
        yield chunk


async def _small_field(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_MAX_FIELD):
        data += chunk
        if len(data) > _MAX_FIELD:
            raise _bad(f"Field '{name}' is too long.", name)
    try:
        return data.decode().strip()
    except UnicodeDecodeError as exc:
        raise _bad(f"Field '{name}' is not UTF-8 text.", name) from exc


def _content_type(part: BodyPartReader) -> str:
    value = part.headers.get("Content-Type", "").strip()
    # It is echoed as a response header on download: keep only a plain media type.
    if not value or len(value) > 127 or not value.isascii() or not value.isprintable():
        return DEFAULT_CONTENT_TYPE
    return value


async def _read_parts(request: web.Request, principal: Principal, upload: _Upload) -> None:
    state = request.app[EDGE]
    store = request.app[FILES].store
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise _bad("Nested multipart bodies are not supported.")
        if part.name == "file":
            if upload.staged is not None:
                raise _bad("Send exactly one 'file' part.", "file")
            upload.filename = files.display_name(part.filename)
            upload.staged = await store.stage(principal.account_id, _part_chunks(part),
                                              content_type=_content_type(part),
                                              max_bytes=state.settings.max_file_bytes)
        elif part.name in _FIELDS:
            upload.fields[part.name] = await _small_field(part, part.name)
        else:
            await part.release()  # unknown fields are skipped, as OpenAI does


def _expiry(fields: dict[str, str], created_at: int) -> int | None:
    """expires_at from OpenAI's expires_after; None when it was not sent (retention applies)."""
    anchor, seconds = fields.get(_ANCHOR), fields.get(_SECONDS)
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise _bad("expires_after[anchor] must be 'created_at'.", "expires_after.anchor")
    lifetime = bounded_int(seconds, MIN_EXPIRES_AFTER_S, MAX_EXPIRES_AFTER_S) if seconds is not None else None
    if lifetime is None:
        raise _bad(f"expires_after[seconds] must be an integer from {MIN_EXPIRES_AFTER_S} to {MAX_EXPIRES_AFTER_S}.",
                   "expires_after.seconds")
    return created_at + lifetime


async def create_file(request: web.Request) -> web.StreamResponse:
    state = request.app[EDGE]
    store = request.app[FILES].store
    principal = state.keys.check(request.headers).principal
    key = idempotency.key_of(request)  # a malformed key is refused before any byte is stored
    if request.content_type != "multipart/form-data":
        raise _bad("Upload files as multipart/form-data with the fields 'file' and 'purpose'.")
    upload = _Upload()
    try:
        try:
            await _read_parts(request, principal, upload)
        except TooLarge as exc:
            raise GatewayError(413, errors.INVALID_REQUEST,
                               f"File too large: the limit is {exc.limit} bytes.", param="file") from exc
        except ConnectionError as exc:  # the client went away mid-upload: nothing is kept
            raise _bad("The upload was cut short before the body ended.") from exc
        except (ValueError, RuntimeError, ClientError) as exc:
            raise _bad(f"Malformed multipart body: {exc}") from exc
        if upload.staged is None:
            raise _bad("Missing the 'file' part.", "file")
        purpose = upload.fields.get("purpose")
        if purpose not in files.PURPOSES:
            raise _bad(f"'purpose' must be one of {', '.join(files.PURPOSES)}.", "purpose")
        return await _commit(request, principal, upload, purpose, key)
    finally:
        if upload.staged is not None:  # refused, replayed or failed: the staged bytes are no file
            await store.discard(upload.staged)


async def _commit(request: web.Request, principal: Principal, upload: _Upload, purpose: str,
                  key: str | None) -> web.Response:
    staged = upload.staged
    assert staged is not None
    created_at = int(time.time())
    expires_at = _expiry(upload.fields, created_at)
    claim = None
    if key is not None:
        # The fingerprint is taken after streaming: what was uploaded, not the multipart framing.
        fingerprint = idempotency.fingerprint_of(upload.filename, purpose, staged.blob.sha256,
                                                 upload.fields.get(_SECONDS) or "")
        answer = await request.app[EDGE].idempotency.begin(principal, SCOPE, key, fingerprint)
        if isinstance(answer, web.Response):
            return answer  # the original upload is the file; the caller discards this copy
        claim = answer
    try:
        record = await request.app[FILES].store.commit(
            staged, subaccount_id=principal.subaccount_id, filename=upload.filename, purpose=purpose,
            expires_at=expires_at, created_at=created_at)
    except BaseException:
        if claim is not None:
            await claim.release()
        raise
    upload.staged = None  # it is a file now: nothing to discard whatever happens next
    response = web.json_response(body=msgspec.json.encode(files.public(record)))
    if claim is not None:
        await claim.finish(response)
    return response
