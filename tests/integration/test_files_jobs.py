"""Job results (`/v1/files/jobs/{job_id}/{filename}`) and signed key-less URLs."""

import os
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from libs.contracts import files
from tests.integration.api import create_sub_account
from tests.integration.cluster import Cluster
from tests.integration.files_support import (
    delete_object,
    other_account_key,
    request,
    write_job_result,
)

VIDEO = os.urandom(300 * 1024 + 11)  # a few Object Store chunks


def _job(gateway: Cluster, subaccount_id: str | None = None, filename: str = "output.mp4") -> str:
    job_id = f"job_{os.urandom(8).hex()}"
    write_job_result(gateway, "root", job_id, filename, VIDEO, subaccount_id=subaccount_id)
    return job_id


def _status(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["error"]["code"] == status


def _sign(gateway: Cluster, job_id: str, filename: str = "output.mp4", key: str | None = None,
          **params: object) -> dict[str, object]:
    response = request(gateway, "GET", f"/files/jobs/{job_id}/{filename}/signed", key, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_job_result_download_and_range(gateway: Cluster) -> None:
    job_id = _job(gateway)
    whole = request(gateway, "GET", f"/files/jobs/{job_id}/output.mp4")
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["Content-Type"] == "video/mp4" and whole.headers["Accept-Ranges"] == "bytes"
    for header, expected in (("bytes=0-99", VIDEO[:100]), ("bytes=200000-", VIDEO[200000:]),
                             ("bytes=-10", VIDEO[-10:]), (f"bytes=131000-{len(VIDEO) + 50}", VIDEO[131000:])):
        ranged = request(gateway, "GET", f"/files/jobs/{job_id}/output.mp4", headers={"Range": header})
        assert ranged.status_code == 206 and ranged.content == expected, header
        assert ranged.headers["Content-Range"].endswith(f"/{len(VIDEO)}")
    beyond = request(gateway, "GET", f"/files/jobs/{job_id}/output.mp4", headers={"Range": f"bytes={len(VIDEO)}-"})
    _status(beyond, 416)
    assert beyond.headers["Content-Range"] == f"bytes */{len(VIDEO)}"
    malformed = request(gateway, "GET", f"/files/jobs/{job_id}/output.mp4", headers={"Range": "pages=1"})
    assert malformed.status_code == 200 and malformed.content == VIDEO


def test_job_result_isolation_and_bad_names(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice-jobs")
    bob = create_sub_account(gateway, name="bob-jobs")
    job_id = _job(gateway, subaccount_id=alice["id"])
    path = f"/files/jobs/{job_id}/output.mp4"
    assert request(gateway, "GET", path, alice["key"]).content == VIDEO
    assert request(gateway, "GET", path).content == VIDEO  # the account's own key
    for key in (bob["key"], other_account_key(gateway)):
        _status(request(gateway, "GET", path, key), 404)
        _status(request(gateway, "GET", f"{path}/signed", key), 404)
    _status(request(gateway, "GET", path, "sk-aig-wrong"), 401)
    _status(httpx.get(f"{gateway.base_url}{path}"), 401)
    _status(request(gateway, "GET", f"/files/jobs/{job_id}/missing.mp4"), 404)
    _status(request(gateway, "GET", f"/files/jobs/{job_id}/missing.mp4/signed"), 404)
    for bad_job in ("à", "a.b", "*", ">", "a b", "x" * 300):
        _status(request(gateway, "GET", f"/files/jobs/{bad_job}/output.mp4"), 404)
    for bad_name in ("..", ".hidden", "a*b", "a>b", "x" * 300, "é.mp4"):
        _status(request(gateway, "GET", f"/files/jobs/{job_id}/{bad_name}"), 404)


def test_signed_url_without_key(gateway: Cluster) -> None:
    job_id = _job(gateway)
    before = int(time.time())
    signed = _sign(gateway, job_id)
    assert before + 3600 <= int(signed["expires_at"]) <= int(time.time()) + 3600  # type: ignore[call-overload]
    url = str(signed["url"])
    assert url.startswith(gateway.base_url.removesuffix("/v1"))
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == VIDEO
    ranged = httpx.get(url, headers={"Range": "bytes=5-9"})
    assert ranged.status_code == 206 and ranged.content == VIDEO[5:10]


def test_tampered_signed_urls_are_403(gateway: Cluster) -> None:
    job_id = _job(gateway)
    other_job = _job(gateway)
    parts = urlsplit(str(_sign(gateway, job_id, expires_in=600)["url"]))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}"

    def fetch(path: str = parts.path, **changes: str) -> httpx.Response:
        return httpx.get(f"{base}{path}?{urlencode({**query, **changes})}")

    assert fetch().status_code == 200
    signature = query["signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for response in (fetch(signature=flipped), fetch(signature=""), fetch(expires=str(int(query["expires"]) + 60)),
                     fetch(expires="soon"), fetch(account="acct_other"),
                     fetch(parts.path.replace(job_id, other_job)),
                     fetch(parts.path.replace("output.mp4", "output.mp5")),
                     httpx.get(f"{base}{parts.path}")):
        _status(response, 403)


def test_signed_url_expiry_bounds(gateway: Cluster) -> None:
    job_id = _job(gateway)
    for bad in (0, -1, 604801, "x", "1.5"):
        _status(request(gateway, "GET", f"/files/jobs/{job_id}/output.mp4/signed", params={"expires_in": bad}), 400)
    assert int(_sign(gateway, job_id, expires_in=604800)["expires_at"]) >= int(time.time()) + 604700  # type: ignore[call-overload]
    short = str(_sign(gateway, job_id, expires_in=1)["url"])
    time.sleep(2.1)  # a link's lifetime is whole seconds: let this one lapse
    _status(httpx.get(short), 403)


def test_signed_url_for_missing_object_is_404(gateway: Cluster) -> None:
    job_id = _job(gateway, filename="gone.glb")
    url = str(_sign(gateway, job_id, "gone.glb")["url"])

    delete_object(gateway, files.job_object_name("root", job_id, "gone.glb"))
    _status(httpx.get(url), 404)


@pytest.mark.parametrize("size", [0, 1])
def test_signed_uploaded_file(gateway: Cluster, size: int) -> None:
    created = request(gateway, "POST", "/files", files={"file": ("s.bin", b"z" * size), "purpose": (None, "user_data")})
    file_id = created.json()["id"]
    signed = request(gateway, "GET", f"/files/{file_id}/signed", params={"expires_in": 60}).json()
    fetched = httpx.get(signed["url"])
    assert fetched.status_code == 200 and fetched.content == b"z" * size
    tampered = signed["url"].replace(file_id, "file-" + "0" * 24)
    _status(httpx.get(tampered), 403)
    request(gateway, "DELETE", f"/files/{file_id}")
    _status(httpx.get(signed["url"]), 404)
