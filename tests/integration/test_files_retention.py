"""A private gateway (two edges) with a small file limit and a short retention: 413 keeps
nothing, the sweep removes expired files (records and bytes), old job results and orphaned
bytes, and a URL signed by one edge opens on the other."""

import io
import os
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.files_support import object_names, put_object, request, write_job_result

LIMIT = 64 * 1024
RETENTION_S = 3


@pytest.fixture(scope="module")
def small_gateway() -> Iterator[Cluster]:
    cluster = start_cluster(edges=2, extra_env={"SWITCHBOARD_MAX_FILE_BYTES": str(LIMIT),
                                       "SWITCHBOARD_FILE_RETENTION_S": str(RETENTION_S),
                                       "SWITCHBOARD_RETENTION_SWEEP_S": "0.5"})
    yield cluster
    cleanup(cluster)


def test_file_over_the_limit_is_413_and_keeps_nothing(small_gateway: Cluster) -> None:
    before = set(object_names(small_gateway))
    listed_before = {f.id for f in small_gateway.client().files.list()}
    with pytest.raises(openai.APIStatusError) as info:
        small_gateway.client().files.create(file=("big.bin", io.BytesIO(os.urandom(4 * LIMIT))), purpose="batch")
    assert info.value.status_code == 413
    assert info.value.body["code"] == 413 and "limit" in info.value.body["message"]  # type: ignore[index]
    assert set(object_names(small_gateway)) <= before
    assert {f.id for f in small_gateway.client().files.list()} == listed_before
    exact = small_gateway.client().files.create(file=("fits.bin", io.BytesIO(b"a" * LIMIT)), purpose="batch")
    assert exact.bytes == LIMIT


def test_upload_cut_short_keeps_nothing(small_gateway: Cluster) -> None:
    before = set(object_names(small_gateway))
    head = (b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + small_gateway.admin_key.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000\r\n\r\n--b\r\n"
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", small_gateway.edge_ports[0])) as sock:
        sock.sendall(head + b"x" * 20000)  # then hang up, 30 kB short
    assert request(small_gateway, "GET", "/files").status_code == 200  # the edge is fine
    assert set(object_names(small_gateway)) <= before
    assert not [f for f in small_gateway.client().files.list() if f.filename == "a"]


def test_sweep_removes_expired_files_and_old_results(small_gateway: Cluster) -> None:
    client = small_gateway.client()
    doomed = client.files.create(file=("old.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    assert doomed.expires_at == doomed.created_at + RETENTION_S
    kept = client.files.create(file=("kept.jsonl", io.BytesIO(b"{}\n")), purpose="batch",
                               expires_after={"anchor": "created_at", "seconds": 3600})
    job_id = f"job_{os.urandom(6).hex()}"
    write_job_result(small_gateway, "root", job_id, "clip.mp4", b"frames")
    orphan = "files/root/file-" + os.urandom(12).hex()

    put_object(small_gateway, orphan, b"half")  # an upload cut short between bytes and record

    def swept() -> bool:
        names = set(object_names(small_gateway))
        return (request(small_gateway, "GET", f"/files/{doomed.id}").status_code == 404
                and f"files/root/{doomed.id}" not in names and orphan not in names
                and f"jobs/root/{job_id}/clip.mp4" not in names)

    eventually(swept, timeout_s=20, interval_s=0.5)
    assert request(small_gateway, "GET", f"/files/jobs/{job_id}/clip.mp4").status_code == 404
    assert client.files.content(kept.id).read() == b"{}\n"
    assert doomed.id not in {f.id for f in client.files.list()}


def test_signed_url_from_one_edge_opens_on_the_other(small_gateway: Cluster) -> None:
    job_id = f"job_{os.urandom(6).hex()}"
    write_job_result(small_gateway, "root", job_id, "clip.mp4", b"frames")
    signed = request(small_gateway, "GET", f"/files/jobs/{job_id}/clip.mp4/signed").json()
    other_edge = signed["url"].replace(str(small_gateway.edge_ports[0]), str(small_gateway.edge_ports[1]))
    assert other_edge != signed["url"]
    fetched = httpx.get(other_edge)
    assert fetched.status_code == 200 and fetched.content == b"frames"
