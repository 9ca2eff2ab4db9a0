"""Regressions for what schemathesis (test_contract_fuzz.py) and the probes around it found:
each was a 500, a dropped connection or a body that was not the error envelope."""

import gzip
import json

import httpx
import pytest

from tests.integration.api import call
from tests.integration.cluster import Cluster, eventually

CHAT = {"model": "sim/gpt-sim", "messages": [{"role": "user", "content": "hi"}]}
FORM = "multipart/form-data; boundary=b0undary"


def _envelope(response: httpx.Response, status: int, param: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["type"] and error["code"] == status
    if param is not None:
        assert error["param"] == param, error
    return error


def _form(*parts: tuple[bytes, bytes]) -> bytes:
    """multipart parts from (raw Content-Disposition params, data)."""
    body = b"".join(b"--b0undary\r\nContent-Disposition: form-data; " + head + b"\r\n\r\n" + data + b"\r\n"
                    for head, data in parts)
    return body + b"--b0undary--\r\n"


def _upload(gateway: Cluster, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/files", content=body, timeout=10,
                      headers={"Authorization": f"Bearer {gateway.admin_key}", "Content-Type": FORM, **headers})


def test_part_header_aiohttp_cannot_parse_is_400(gateway: Cluster) -> None:
    # Raw UTF-8 in a part's header name with bytes aiohttp's header parser refuses.
    body = _form((b'name="\xc2\x81\x02ck\xc2\x98"', b"1"), (b'name="purpose"', b"assistants"),
                 (b'name="file"; filename="a.txt"', b"hello"))
    _envelope(_upload(gateway, body), 400)


@pytest.mark.parametrize("seconds", ["\u00b3\u00b3\u00b3\u00b3", "\u0663\u0666\u0660\u0660", "9" * 1000])
def test_expires_after_seconds_that_int_refuses_is_400(gateway: Cluster, seconds: str) -> None:
    body = _form((b'name="purpose"', b"assistants"), (b'name="file"; filename="a.txt"', b"hello"),
                 (b'name="expires_after[anchor]"', b"created_at"),
                 (b'name="expires_after[seconds]"', seconds.encode()))
    _envelope(_upload(gateway, body), 400, "expires_after.seconds")


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000])
def test_limits_that_int_refuses_are_400(gateway: Cluster, value: str) -> None:
    _envelope(call(gateway, "GET", "/batches", params={"limit": value}), 400, "limit")
    _envelope(call(gateway, "GET", "/files", params={"limit": value}), 400, "limit")


def test_signed_url_expiry_that_int_refuses_is_403(gateway: Cluster) -> None:
    response = httpx.get(f"{gateway.base_url}/files/signed/jobs/job_1/a.mp4",
                         params={"account": "root", "expires": "\u00b2", "signature": "0" * 64}, timeout=10)
    _envelope(response, 403)


@pytest.mark.parametrize(("name", "value"), [("month", "0000-01"), ("month", "9999-12"), ("from", "inf"),
                                             ("from", "nan"), ("to", "1e300"), ("from", "-1e300")])
def test_usage_ranges_outside_the_calendar_are_400(gateway: Cluster, name: str, value: str) -> None:
    for path in ("/usage/by-tag", "/usage/by-sub-account"):
        _envelope(call(gateway, "GET", path, params={name: value}), 400, name)
    assert call(gateway, "GET", "/usage/by-tag", params={"month": "9999-11"}).status_code == 200


@pytest.mark.parametrize("header", ["Authorization", "x-api-key", "x-aig-tag", "x-routing", "x-cache", "traceparent",
                                    "X-Request-Id", "Idempotency-Key", "x-aig-sub-account"])
def test_header_bytes_that_are_not_utf8_are_400(gateway: Cluster, header: str) -> None:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {gateway.admin_key}", header: b"\xe0\xff"}
    response = httpx.post(f"{gateway.base_url}/chat/completions", json=CHAT, headers=headers, timeout=10)
    error = _envelope(response, 400)
    assert str(error["param"]).lower() == header.lower() and "UTF-8" in str(error["message"])
    assert response.headers["X-Request-Id"]


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_body_that_does_not_decode_as_its_content_encoding_is_400(gateway: Cluster, encoding: str) -> None:
    auth = {"Authorization": f"Bearer {gateway.admin_key}", "Content-Encoding": encoding}
    chat = httpx.post(f"{gateway.base_url}/chat/completions", content=b"not compressed",
                      headers={**auth, "Content-Type": "application/json"}, timeout=10)
    assert "content-encoding" in str(_envelope(chat, 400)["message"]).lower()
    _envelope(_upload(gateway, b"not compressed", **{"Content-Encoding": encoding}), 400)
    form = httpx.post(f"{gateway.base_url}/audio/transcriptions", content=b"not compressed",
                      headers={**auth, "Content-Type": FORM}, timeout=10)
    _envelope(form, 400)


def test_a_body_that_does_decode_is_served(gateway: Cluster) -> None:
    response = httpx.post(f"{gateway.base_url}/chat/completions", content=gzip.compress(json.dumps(CHAT).encode()),
                          headers={"Authorization": f"Bearer {gateway.admin_key}", "Content-Encoding": "gzip",
                                   "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("model", "header"), [("sim/gpt-sim\n", "sim/gpt-sim%0A"), ("sim/\u0000", "sim/%00"),
                                                ("sim/gpt-sim\u2028", "sim/gpt-sim%E2%80%A8")])
def test_model_with_control_characters_gets_an_answer(gateway: Cluster, model: str, header: str) -> None:
    # The model is echoed in X-Model: a raw control character there made aiohttp drop the connection.
    response = call(gateway, "POST", "/chat/completions", json={**CHAT, "model": model})
    assert response.headers.get("X-Model") in (header, None), response.headers
    if response.status_code >= 400:
        _envelope(response, response.status_code)


def test_malformed_image_url_for_gemini_is_400(gateway: Cluster) -> None:
    image = {"type": "image_url", "image_url": {"url": "http://[::1"}}
    chat = call(gateway, "POST", "/chat/completions",
                json={"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": [image]}]})
    assert "malformed" in str(_envelope(chat, 400)["message"])
    detections = call(gateway, "POST", "/detections",
                      json={"model": "google/gemini-2.5-flash", "image_url": "http://[::1"})
    _envelope(detections, 400)


def test_malformed_image_url_for_a_generation_fails_the_job_as_invalid(gateway: Cluster) -> None:
    created = call(gateway, "POST", "/videos/generations",
                   json={"model": "sim/video-sim", "prompt": "x", "image_url": "http://[::1"})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    job = eventually(lambda: (j := call(gateway, "GET", f"/jobs/{job_id}").json())["status"] == "failed" and j)
    assert job["error"]["code"] == "invalid_request_error" and "image_url" in job["error"]["message"]
