"""The Files API through the official openai SDK: upload, list, retrieve, download, delete,
tenant isolation, bad ids and Idempotency-Key."""

import hashlib
import io
import os

import httpx
import openai
import pytest

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster
from tests.integration.files_support import other_account_key, request

BAD_IDS = ["à", "a.b", "*", ">", "a b", "x" * 300, "file-%2e%2e"]


def _upload(gateway: Cluster, data: bytes, name: str = "input.jsonl", key: str | None = None,
            purpose: str = "batch", **kwargs: object) -> openai.types.FileObject:
    return gateway.client(key).files.create(file=(name, io.BytesIO(data)), purpose=purpose, **kwargs)  # type: ignore[arg-type]


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status and error["type"] and error["message"]
    return error


def test_upload_retrieve_download_delete(gateway: Cluster) -> None:
    data = b'{"custom_id": "1", "body": {}}\n' * 100
    client = gateway.client()
    created = _upload(gateway, data)
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose) == (len(data), "input.jsonl", "batch")
    assert created.expires_at is not None and created.expires_at - created.created_at == 7 * 24 * 3600
    assert client.files.retrieve(created.id).model_dump() == created.model_dump()
    assert client.files.content(created.id).read() == data
    raw = client.files.with_raw_response.content(created.id)
    assert raw.headers["Content-Length"] == str(len(data))
    assert "input.jsonl" in raw.headers["Content-Disposition"]
    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    _error(call(gateway, "DELETE", f"/files/{created.id}"), 404)


def test_fields_in_either_order_and_expires_after(gateway: Cluster) -> None:
    # The file before the purpose (the SDK sends purpose first): the bytes are staged meanwhile.
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/x.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nuser_data\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"expires_after[anchor]\"\r\n\r\ncreated_at\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"expires_after[seconds]\"\r\n\r\n7200\r\n--b--\r\n")
    response = request(gateway, "POST", "/files", content=body,
                       headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert (created["filename"], created["purpose"], created["bytes"]) == ("x.txt", "user_data", 5)
    assert created["expires_at"] - created["created_at"] == 7200
    download = call(gateway, "GET", f"/files/{created['id']}/content")
    assert (download.content, download.headers["Content-Type"]) == (b"hello", "text/plain")
    sdk = _upload(gateway, b"x", purpose="user_data", expires_after={"anchor": "created_at", "seconds": 3600})
    assert sdk.expires_at == sdk.created_at + 3600


def test_bad_uploads(gateway: Cluster) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _upload(gateway, b"x", purpose="nonsense")
    assert info.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        _upload(gateway, b"x", purpose="user_data", expires_after={"anchor": "created_at", "seconds": 5})
    _error(call(gateway, "POST", "/files", json={"purpose": "batch"}), 400)
    _error(call(gateway, "POST", "/files", files={"purpose": (None, "batch")}), 400)  # no file part
    _error(request(gateway, "POST", "/files", content=b"garbage",
                   headers={"Content-Type": "multipart/form-data; boundary=zz"}), 400)
    _error(call(gateway, "POST", "/files", files={"file": ("a", b"x"), "purpose": (None, "p" * 5000)}), 400)
    two = [("file", ("a", b"1")), ("file", ("b", b"2")), ("purpose", (None, "batch"))]
    _error(call(gateway, "POST", "/files", files=two), 400)
    response = httpx.post(f"{gateway.base_url}/files", files={"file": ("a", b"x"), "purpose": (None, "batch")},
                          headers={"Authorization": "Bearer sk-aig-wrong"})
    _error(response, 401)


def test_list_pagination_order_and_purpose(gateway: Cluster) -> None:
    key = create_sub_account(gateway, name="lister")["key"]
    client = gateway.client(key)
    ids = [_upload(gateway, f"{i}".encode(), f"f{i}.jsonl", key=key).id for i in range(5)]
    other = _upload(gateway, b"u", purpose="user_data", key=key).id
    newest_first = [f.id for f in client.files.list(purpose="batch")]
    assert sorted(newest_first) == sorted(ids)
    first = client.files.list(limit=2, purpose="batch", order="asc")
    assert first.has_more and len(first.data) == 2
    walked = [f.id for f in client.files.list(limit=2, purpose="batch", order="asc")]  # iterating pages on
    assert sorted(walked) == sorted(ids) and len(walked) == 5
    assert [f.id for f in client.files.list(purpose="batch", order="asc")] == walked
    assert [f.id for f in client.files.list(purpose="batch", order="desc")] == walked[::-1]
    page = call(gateway, "GET", "/files", key, params={"limit": 2, "after": walked[1], "order": "asc"}).json()
    assert page["object"] == "list" and [f["id"] for f in page["data"]] == walked[2:4]
    assert (page["first_id"], page["last_id"], page["has_more"]) == (walked[2], walked[3], True)
    assert [f.id for f in client.files.list(purpose="user_data")] == [other]
    for params in ({"limit": 0}, {"limit": 10001}, {"limit": "x"}, {"order": "up"}, {"after": "file-nope"}):
        _error(call(gateway, "GET", "/files", key, params=params), 400)


def test_tenant_and_sub_account_isolation(gateway: Cluster) -> None:
    alice = create_sub_account(gateway, name="alice-files")["key"]
    bob = create_sub_account(gateway, name="bob-files")["key"]
    stranger = other_account_key(gateway)
    mine = _upload(gateway, b"alice's", key=alice).id
    root_file = _upload(gateway, b"root's").id
    for key, visible in ((alice, {mine}), (bob, set()), (stranger, set()), (None, {mine, root_file})):
        listed = {f["id"] for f in call(gateway, "GET", "/files", key).json()["data"]}
        assert listed & {mine, root_file} == visible
    for key, file_id in ((bob, mine), (stranger, mine), (stranger, root_file), (alice, root_file)):
        unknown = _error(call(gateway, "GET", f"/files/{file_id}", key), 404)
        assert unknown == _error(call(gateway, "GET", "/files/file-000000000000000000000000", key), 404)
        _error(call(gateway, "GET", f"/files/{file_id}/content", key), 404)
        _error(call(gateway, "DELETE", f"/files/{file_id}", key), 404)
    assert gateway.client(alice).files.content(mine).read() == b"alice's"
    assert gateway.client().files.content(mine).read() == b"alice's"  # the account sees its sub-accounts'


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_404(gateway: Cluster, bad: str) -> None:
    for suffix in ("", "/content"):
        _error(call(gateway, "GET", f"/files/{bad}{suffix}"), 404)
    _error(call(gateway, "DELETE", f"/files/{bad}"), 404)


def test_wrong_key(gateway: Cluster) -> None:
    file_id = _upload(gateway, b"secret").id
    for method, path in (("GET", "/files"), ("GET", f"/files/{file_id}"), ("GET", f"/files/{file_id}/content"),
                         ("DELETE", f"/files/{file_id}")):
        _error(call(gateway, method, path, "sk-aig-not-a-key"), 401)
        _error(httpx.request(method, f"{gateway.base_url}{path}"), 401)


def test_idempotency_key(gateway: Cluster) -> None:
    client = gateway.client()
    headers = {"Idempotency-Key": f"upload-{os.urandom(6).hex()}"}
    first = _upload(gateway, b"same bytes", extra_headers=headers)
    again = client.files.with_raw_response.create(file=("input.jsonl", io.BytesIO(b"same bytes")), purpose="batch",
                                                  extra_headers=headers)
    assert again.parse().id == first.id and again.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(openai.ConflictError):
        _upload(gateway, b"other bytes", extra_headers=headers)
    mine = [f.id for f in client.files.list() if f.id == first.id]
    assert mine == [first.id]
    _error(request(gateway, "POST", "/files", files={"file": ("a", b"x"), "purpose": (None, "batch")},
                   headers={"Idempotency-Key": ""}), 400)


def test_large_upload_round_trips(gateway: Cluster) -> None:
    data = os.urandom(20 * 1024 * 1024 + 7)
    created = _upload(gateway, data, "big.bin", purpose="user_data")
    assert created.bytes == len(data)
    with httpx.stream("GET", f"{gateway.base_url}/files/{created.id}/content", timeout=60,
                      headers={"Authorization": f"Bearer {gateway.admin_key}"}) as response:
        digest = hashlib.sha256()
        for piece in response.iter_bytes():
            digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    ranged = request(gateway, "GET", f"/files/{created.id}/content", headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206 and ranged.content == data[1000:2000]
    gateway.client().files.delete(created.id)
