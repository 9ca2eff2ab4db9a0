"""The Files API (OpenAI's /v1/files): upload, list, retrieve, delete, download, and a
signed key-less link to an uploaded file. Job results are in job_files.py.

Another tenant's file, another sub-account's file, an unknown id and an id that could
not be one all answer the same 404.
"""

import time

import msgspec
from aiohttp import web

from libs.contracts import errors, files
from libs.contracts.files import FileDeleted, FileList, FileRecord, SignedUrl
from services.edge import file_upload, job_files
from services.edge.downloads import not_found, stream_blob
from services.edge.errors import GatewayError
from services.edge.files_state import FILES, install
from services.edge.signed_urls import KIND_FILE
from services.edge.state import EDGE
from services.edge.validation import bounded_int

MAX_LIMIT = 10_000  # OpenAI: 1 to 10,000, default 10,000


def _json(value: msgspec.Struct) -> web.Response:
    return web.json_response(body=msgspec.json.encode(value))


async def _record(request: web.Request) -> FileRecord:
    principal = request.app[EDGE].keys.check(request.headers).principal
    record = await request.app[FILES].store.find(principal, request.match_info["id"])
    if record is None:
        raise not_found("file")
    return record


def _limit(raw: str | None) -> int:
    if raw is None:
        return MAX_LIMIT
    limit = bounded_int(raw, 1, MAX_LIMIT)
    if limit is None:
        raise GatewayError(400, errors.INVALID_REQUEST, f"limit must be an integer from 1 to {MAX_LIMIT}.",
                           param="limit")
    return limit


async def list_files(request: web.Request) -> web.Response:
    principal = request.app[EDGE].keys.check(request.headers).principal
    query = request.query
    limit = _limit(query.get("limit"))
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(400, errors.INVALID_REQUEST, "order must be 'asc' or 'desc'.", param="order")
    records = await request.app[FILES].store.list(principal)
    purpose = query.get("purpose")
    if purpose:
        records = [r for r in records if r.purpose == purpose]
    if order == "desc":
        records.reverse()
    after = query.get("after")
    if after:
        position = next((i for i, r in enumerate(records) if r.id == after), None)
        if position is None:
            raise GatewayError(400, errors.INVALID_REQUEST, "after: no such file in this list.", param="after")
        records = records[position + 1:]
    page = [files.public(r) for r in records[:limit]]
    return _json(FileList(data=page, first_id=page[0].id if page else "",
                          last_id=page[-1].id if page else "", has_more=len(records) > limit))


async def get_file(request: web.Request) -> web.Response:
    return _json(files.public(await _record(request)))


async def delete_file(request: web.Request) -> web.Response:
    record = await _record(request)
    await request.app[FILES].store.delete(record)
    return _json(FileDeleted(id=record.id))


async def file_content(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    return await _stream(request, record)


async def _stream(request: web.Request, record: FileRecord) -> web.StreamResponse:
    info = await request.app[EDGE].blobs.info(record.object_name)
    if info is None:
        raise not_found("file")
    return await stream_blob(request, request.app[EDGE].blobs, info, record.filename, record.content_type)


async def sign_file(request: web.Request) -> web.Response:
    record = await _record(request)
    expires_at = int(time.time()) + job_files.expires_in(request)
    query = request.app[FILES].signer.query(KIND_FILE, record.account_id, record.id, "", expires_at)
    url = f"{job_files.public_base(request)}/v1/files/signed/files/{record.id}?{query}"
    return _json(SignedUrl(url=url, expires_at=expires_at))


async def signed_file(request: web.Request) -> web.StreamResponse:
    """Key-less: the signature is the authority."""
    file_id = request.match_info["id"]
    account_id = job_files.check_signature(request, KIND_FILE, file_id, "")
    record = await request.app[FILES].store.get(account_id, file_id)
    if record is None:
        raise not_found("file")
    return await _stream(request, record)


def add_routes(app: web.Application) -> None:
    install(app)
    add = app.router
    add.add_post("/v1/files", file_upload.create_file)
    add.add_get("/v1/files", list_files)
    add.add_get("/v1/files/{id}", get_file)
    add.add_delete("/v1/files/{id}", delete_file)
    add.add_get("/v1/files/{id}/content", file_content)
    add.add_get("/v1/files/{id}/signed", sign_file)
    add.add_get("/v1/files/signed/files/{id}", signed_file)
    job_files.add_routes(app)
