"""Job results (`GET /v1/files/jobs/{job_id}/{filename}`), the signed URLs that share them
without a key, and the key-less route those URLs point at.

Results are objects named `jobs/<account>/<job id>/<filename>` (written by the router), so
an account only ever reaches its own. Within an account a sub-account key reaches only its
own jobs' results: the job record (KV `sb_jobs`, `<account>.<job id>`) says whose job it is.
"""

import time

import msgspec
from aiohttp import web
from nats.js.errors import KeyNotFoundError

from libs.contracts import errors, files
from libs.contracts.bus.inference import Principal
from libs.contracts.files import SignedUrl
from libs.contracts.ids import valid_id
from libs.runtime.blobs import BlobInfo
from services.edge.downloads import not_found, stream_blob
from services.edge.errors import GatewayError
from services.edge.files_state import FILES
from services.edge.signed_urls import DEFAULT_EXPIRES_IN_S, KIND_JOB, MAX_EXPIRES_IN_S
from services.edge.state import EDGE
from services.edge.validation import bounded_int


def expires_in(request: web.Request) -> int:
    raw = request.query.get("expires_in")
    if raw is None:
        return DEFAULT_EXPIRES_IN_S
    seconds = bounded_int(raw, 1, MAX_EXPIRES_IN_S)
    if seconds is None:
        raise GatewayError(400, errors.INVALID_REQUEST,
                           f"expires_in must be an integer number of seconds from 1 to {MAX_EXPIRES_IN_S} (7 days).",
                           param="expires_in")
    return seconds


def public_base(request: web.Request) -> str:
    """SWITCHBOARD_PUBLIC_URL when set (behind a proxy or CDN), else where the caller reached us."""
    return request.app[EDGE].settings.public_url or f"{request.scheme}://{request.host}"


def check_signature(request: web.Request, kind: str, target: str, filename: str) -> str:
    """The account a signed link was minted for; 403 for a tampered, mismatched or expired one."""
    query = request.query
    account_id = query.get("account", "")
    if not request.app[FILES].signer.valid(kind, account_id, target, filename, query.get("expires", ""),
                                           query.get("signature", "")):
        raise GatewayError(403, errors.PERMISSION,
                           "This signed URL is invalid or has expired; mint a new one with an API key.")
    return account_id


async def _may_read(request: web.Request, principal: Principal, job_id: str) -> bool:
    kv = await request.app[FILES].jobs_kv()
    raw = None
    if kv is not None:
        try:
            raw = (await kv.get(f"{principal.account_id}.{job_id}")).value
        except KeyNotFoundError:
            raw = None
    if principal.subaccount_id is None:
        return True  # the object name already confines the account's keys to the account
    if not raw:
        return False
    try:
        return files.decode_job_owner(raw).subaccount_id == principal.subaccount_id
    except msgspec.DecodeError:
        return False


async def _result(request: web.Request) -> tuple[Principal, BlobInfo, str]:
    principal = request.app[EDGE].keys.check(request.headers).principal
    job_id, filename = request.match_info["job_id"], request.match_info["filename"]
    if not valid_id(job_id) or not files.valid_filename(filename):
        raise not_found("job result")
    if not await _may_read(request, principal, job_id):
        raise not_found("job result")
    info = await request.app[EDGE].blobs.info(files.job_object_name(principal.account_id, job_id, filename))
    if info is None:
        raise not_found("job result")
    return principal, info, filename


async def job_result(request: web.Request) -> web.StreamResponse:
    _, info, filename = await _result(request)
    return await stream_blob(request, request.app[EDGE].blobs, info, filename, inline=True)


async def sign_job_result(request: web.Request) -> web.Response:
    principal, _, filename = await _result(request)
    job_id = request.match_info["job_id"]
    expires_at = int(time.time()) + expires_in(request)
    query = request.app[FILES].signer.query(KIND_JOB, principal.account_id, job_id, filename, expires_at)
    url = f"{public_base(request)}/v1/files/signed/jobs/{job_id}/{filename}?{query}"
    return web.json_response(body=msgspec.json.encode(SignedUrl(url=url, expires_at=expires_at)))


async def signed_job_result(request: web.Request) -> web.StreamResponse:
    """Key-less: the signature is the authority (it covers account, job, file name and expiry)."""
    job_id, filename = request.match_info["job_id"], request.match_info["filename"]
    account_id = check_signature(request, KIND_JOB, job_id, filename)
    if not valid_id(job_id) or not files.valid_filename(filename):
        raise not_found("job result")
    info = await request.app[EDGE].blobs.info(files.job_object_name(account_id, job_id, filename))
    if info is None:
        raise not_found("job result")
    return await stream_blob(request, request.app[EDGE].blobs, info, filename, inline=True)


def add_routes(app: web.Application) -> None:
    add = app.router
    add.add_get("/v1/files/jobs/{job_id}/{filename}", job_result)
    add.add_get("/v1/files/jobs/{job_id}/{filename}/signed", sign_job_result)
    add.add_get("/v1/files/signed/jobs/{job_id}/{filename}", signed_job_result)
