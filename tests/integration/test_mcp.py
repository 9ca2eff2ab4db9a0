"""The MCP server at /mcp, driven with the official SDK's client over streamable HTTP and
the legacy SSE transport, against the real gateway (tools call its HTTP API on loopback)."""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from playwright.sync_api import sync_playwright

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import MAX_BODY_BYTES, Cluster, cleanup, eventually, start_cluster

TOOLS = {"chat", "embed", "generate_image", "transcribe", "speak", "translate", "classify", "moderate", "rerank",
         "ocr", "detect_objects", "generate_video", "generate_music", "generate_3d", "get_job", "cancel_job",
         "list_models", "search_models", "usage_by_tag", "usage_by_sub_account", "create_replay", "create_eval",
         "get_eval"}
CHAT_MODEL = "openai/gpt-4o-mini"
VIDEO = "sim/video-sim"
HELLO = [{"role": "user", "content": "Say hello"}]
CHROMIUM = Path("/usr/bin/chromium")
ODD_IDS = ["à", "a.b", "*", ">", "x" * 300, "../sub-accounts"]


def root(gateway: Cluster, edge: int = 0) -> str:
    return gateway.edge_url(edge).removesuffix("/v1")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def streamable(gateway: Cluster, key: str | None = None, mode: str = "legacy",
                     headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={**auth(key or gateway.admin_key), **(headers or {})},
                              timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{root(gateway)}/mcp", http_client=http), mode=mode) as client:
        yield client


@asynccontextmanager
async def over_sse(gateway: Cluster, key: str | None = None, mode: str = "legacy") -> AsyncIterator[Client]:
    async with Client(sse_client(f"{root(gateway)}/mcp/sse", headers=auth(key or gateway.admin_key)),
                      mode=mode) as client:
        yield client


def payload(result: types.CallToolResult) -> Any:
    """The JSON answer a tool returned as its first (text) content."""
    assert result.content and result.content[0].type == "text", result
    return json.loads(result.content[0].text)


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("transport", ["streamable", "sse"])
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_tool_is_listed_with_a_self_contained_object_schema(gateway: Cluster, transport: str,
                                                                       mode: str) -> None:
    connect = streamable if transport == "streamable" else over_sse
    async with connect(gateway, mode=mode) as client:
        assert client.server_info is None or client.server_info.name == "switchboard"
        listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    for tool in listed:
        schema = tool.input_schema
        assert schema["type"] == "object" and isinstance(schema.get("properties"), dict), tool.name
        assert "$ref" not in json.dumps(schema), tool.name
        assert tool.description
    chat = next(tool for tool in listed if tool.name == "chat").input_schema
    assert chat["required"] == ["messages"] and "stream" not in chat["properties"]
    assert chat["properties"]["messages"]["items"]["properties"]["role"]["enum"]  # ChatMessage, inlined


@pytest.mark.parametrize("transport", ["streamable", "sse"])
async def test_chat_embed_and_the_catalog_through_the_tools(gateway: Cluster, transport: str) -> None:
    connect = streamable if transport == "streamable" else over_sse
    async with connect(gateway) as client:
        models = payload(await client.call_tool("list_models", {"modality": "text"}))
        assert CHAT_MODEL in {card["id"] for card in models["data"]}
        answer = await client.call_tool("chat", {"model": CHAT_MODEL, "messages": HELLO, "stream": True})
        assert not answer.is_error, answer
        assert answer.structured_content is not None and answer.structured_content["object"] == "chat.completion"
        assert payload(answer)["choices"][0]["message"]["content"]  # stream: true was dropped: one JSON answer
        embedded = payload(await client.call_tool("embed", {"model": "openai/text-embedding-3-small",
                                                            "input": ["alpha", "beta"]}))
        assert len(embedded["data"]) == 2 and embedded["data"][0]["embedding"]
        found = payload(await client.call_tool("search_models", {"query": "GPT mini", "modality": "text"}))
        assert CHAT_MODEL in {card["id"] for card in found["data"]}
        assert all("gpt" in card["id"].lower() or "gpt" in card["upstream_model"].lower() for card in found["data"])


async def test_binary_answers_are_image_and_audio_content(gateway: Cluster) -> None:
    async with streamable(gateway) as client:
        images = await client.call_tool("generate_image", {"model": "sim/image-sim", "prompt": "a red square",
                                                           "response_format": "b64_json"})
        speech = await client.call_tool("speak", {"model": "sim/tts-sim", "input": "hello", "voice": "alloy"})
    assert not images.is_error and [part.type for part in images.content] == ["text", "image"]
    assert images.content[1].data and images.content[1].mime_type.startswith("image/")
    assert payload(images)["data"][0]["b64_json"] == "<image content 1>"  # not sent twice
    assert not speech.is_error and speech.content[0].type == "audio"
    assert speech.content[0].mime_type.startswith("audio/") and speech.content[0].data


async def test_a_video_job_runs_to_completion_through_get_job(gateway: Cluster) -> None:
    public = "gateway.example.test:8443"  # as a client behind a proxy calls it: result links must say so
    async with streamable(gateway, headers={"Host": public}) as client:
        started = await client.call_tool("generate_video", {"prompt": "a cat on a skateboard", "model": VIDEO})
        assert not started.is_error, started
        job_id = payload(started)["id"]
        assert payload(started)["status"] == "queued"

        async def completed() -> Any:
            job = payload(await client.call_tool("get_job", {"id": job_id}))
            return job if job["status"] == "completed" else None

        job = await until(completed)
    assert job["id"] == job_id and job["modality"] == "video" and job["result"]["files"]
    assert job["result_url"].startswith(f"http://{public}/v1/files/jobs/{job_id}/")


async def test_usage_by_tag_sees_the_calls_tagged_on_the_mcp_connection(gateway: Cluster) -> None:
    tag = f"mcp-{secrets.token_hex(4)}"
    async with streamable(gateway, headers={"x-aig-tag": tag}) as client:
        assert not (await client.call_tool("chat", {"model": CHAT_MODEL, "messages": HELLO})).is_error

        async def tagged_row() -> Any:
            report = payload(await client.call_tool("usage_by_tag", {}))
            return next((row for row in report["data"] if row["group"] == tag), None)

        row = await until(tagged_row)
        bad = await client.call_tool("usage_by_tag", {"month": "2026-13"})
    assert row["requests"] == 1 and report_shape_ok(row)
    assert bad.is_error and "month" in bad.content[0].text and bad.structured_content["error"]["code"] == 400


def report_shape_ok(row: dict[str, Any]) -> bool:
    return {"requests", "errors", "cost_micros", "cost_cents", "p50_latency_ms"} <= set(row)


async def test_a_sub_account_cannot_reach_another_tenants_job(gateway: Cluster) -> None:
    alice, bob = create_sub_account(gateway, name="mcp-alice"), create_sub_account(gateway, name="mcp-bob")
    async with streamable(gateway, alice["key"]) as client:
        job_id = payload(await client.call_tool("generate_video", {"prompt": "a dog", "model": VIDEO}))["id"]
        assert payload(await client.call_tool("get_job", {"id": job_id}))["id"] == job_id
    async with over_sse(gateway, bob["key"]) as client:
        theirs = await client.call_tool("get_job", {"id": job_id})
        unknown = await client.call_tool("get_job", {"id": "job_" + "0" * 24})
        cancel = await client.call_tool("cancel_job", {"id": job_id})
        odd = [await client.call_tool("get_job", {"id": id_}) for id_ in ODD_IDS]
    expected = [(theirs, job_id), (unknown, "job_" + "0" * 24), (cancel, job_id), *zip(odd, ODD_IDS, strict=True)]
    for result, id_ in expected:
        assert result.is_error, result
        assert result.structured_content == {"error": {
            "message": f"No job with id '{id_}' for this key.", "type": "invalid_request_error", "code": 404,
            "param": "id"}}
    assert call(gateway, "GET", f"/jobs/{job_id}", alice["key"]).json()["status"] != "cancelled"


async def test_tool_failures_are_tool_errors_with_the_gateways_message(gateway: Cluster) -> None:
    async with streamable(gateway) as client:
        missing = await client.call_tool("chat", {"model": CHAT_MODEL})
        unknown_model = await client.call_tool("chat", {"model": "nobody/none", "messages": HELLO})
        wrong_type = await client.call_tool("get_job", {"id": 7})
        extra = await client.call_tool("list_models", {"modality": "text", "colour": "blue"})
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("no_such_tool", {})
    assert missing.is_error and "messages" in missing.content[0].text
    assert missing.structured_content["error"]["type"] == "invalid_request_error"
    assert unknown_model.is_error and unknown_model.structured_content["error"]["code"] == 404
    assert wrong_type.is_error and "Invalid arguments" in wrong_type.content[0].text
    assert extra.is_error and "colour" in extra.content[0].text


def test_a_bad_or_missing_key_is_an_openai_shaped_401(gateway: Cluster) -> None:
    base = root(gateway)
    requests = [("POST", "/mcp"), ("GET", "/mcp/sse"), ("POST", "/mcp/message?sessionId=" + "0" * 32)]
    for headers in ({}, auth("sk-wrong"), {"Authorization": "Basic abc"}):
        for method, path in requests:
            response = httpx.request(method, base + path, headers=headers, json={"jsonrpc": "2.0", "id": 1,
                                                                                 "method": "ping"}, timeout=10)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["type"] == "authentication_error"
            assert response.json()["error"]["code"] == 401


def test_an_anthropic_style_x_api_key_works_too(gateway: Cluster) -> None:
    listed = httpx.post(f"{root(gateway)}/mcp", timeout=10, json={
        "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "list_models", "arguments": {}}},
        headers={"x-api-key": gateway.admin_key, "Accept": "application/json, text/event-stream"})
    assert listed.status_code == 200 and not listed.json()["result"]["isError"]
    assert listed.json()["result"]["structuredContent"]["data"]


def test_malformed_json_rpc_is_a_json_rpc_error_not_a_500(gateway: Cluster) -> None:
    headers = {**auth(gateway.admin_key), "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    for body in (b"{not json", b"", b'{"foo": 1}', b"[]", b'{"jsonrpc": "2.0", "method": 5, "id": 1}'):
        response = httpx.post(f"{root(gateway)}/mcp", content=body, headers=headers, timeout=10)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        assert response.json()["error"]["code"] < 0, (body, response.text)  # a JSON-RPC error code
    oversized = httpx.post(f"{root(gateway)}/mcp", headers=headers, timeout=10,
                           content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * (
                               MAX_BODY_BYTES + 1) + b'"}}')
    assert oversized.status_code == 413 and oversized.json()["error"]["type"] == "invalid_request_error"
    listening = httpx.get(f"{root(gateway)}/mcp", headers=headers, timeout=10)
    assert listening.status_code == 405  # stateless: no server-to-client stream to hold open
    unknown = httpx.post(f"{root(gateway)}/mcp", headers=headers, timeout=10,
                         json={"jsonrpc": "2.0", "id": 9, "method": "no/such/method", "params": {}})
    assert unknown.json()["error"]["code"] == types.METHOD_NOT_FOUND and unknown.json()["id"] == 9


def _open_sse(client: httpx.Client, gateway: Cluster, key: str, edge: int = 0) -> tuple[Any, str]:
    """Open a raw SSE session; return the open stream and its message path."""
    stream = client.stream("GET", f"{root(gateway, edge)}/mcp/sse", headers=auth(key))
    response = stream.__enter__()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    lines = response.iter_lines()
    assert next(lines) == "event: endpoint"
    data = next(lines)
    assert data.startswith("data: /mcp/message?sessionId=")
    return (stream, lines), data.removeprefix("data: ")


def _next_message(lines: Any) -> dict[str, Any]:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line.removeprefix("data: "))
    raise AssertionError("stream ended")


def test_sse_messages_are_checked_and_owned_by_the_key_that_opened_the_stream(gateway: Cluster) -> None:
    other = create_sub_account(gateway, name="mcp-intruder")
    with httpx.Client(timeout=10) as client:
        (stream, lines), path = _open_sse(client, gateway, gateway.admin_key)
        url = root(gateway) + path
        try:
            for body in (b"{not json", b"", b'{"foo": 1}'):
                bad = client.post(url, content=body, headers=auth(gateway.admin_key))
                assert bad.status_code == 400 and bad.json()["error"]["code"] in (-32700, -32600), bad.text
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            stolen = client.post(url, json=ping, headers=auth(other["key"]))
            assert stolen.status_code == 404 and stolen.json()["error"]["type"] == "invalid_request_error"
            for session in ("0" * 32, "à", "a.b", "*", ">", "x" * 300):
                missing = client.post(f"{root(gateway)}/mcp/message", params={"sessionId": session}, json=ping,
                                      headers=auth(gateway.admin_key))
                assert missing.status_code == 404, (session, missing.text)
            assert client.post(f"{root(gateway)}/mcp/message", json=ping,
                               headers=auth(gateway.admin_key)).status_code == 400
            huge = client.post(url, content=b"[" + b"1," * MAX_BODY_BYTES + b"1]", headers=auth(gateway.admin_key))
            assert huge.status_code == 413
            assert client.post(url, json=ping, headers=auth(gateway.admin_key)).status_code == 202
            assert _next_message(lines) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        finally:
            stream.__exit__(None, None, None)
        # The client left: the session is gone with it (noticed within half a second).
        assert eventually(lambda: client.post(url, json=ping, headers=auth(gateway.admin_key)).status_code == 404, 5)


def test_the_inspector_is_a_self_contained_page(gateway: Cluster) -> None:
    response = httpx.get(f"{root(gateway)}/mcp/inspect", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert "tools/list" in page and "sessionStorage" in page
    assert "<script src" not in page and "://" not in page  # nothing from elsewhere


def test_the_inspector_lists_and_calls_tools_in_a_browser(gateway: Cluster) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.goto(f"{root(gateway)}/mcp/inspect")
            page.fill("#key", gateway.admin_key)
            page.click("#connect")
            # (wait_for_function would eval() its predicate, which the page's CSP refuses)
            page.locator("nav li").nth(len(TOOLS) - 1).wait_for()
            assert page.locator("nav li").count() == len(TOOLS)
            assert page.evaluate("sessionStorage.getItem('switchboard.mcp.key')") == gateway.admin_key
            assert gateway.admin_key not in page.url and page.input_value("#key") == ""
            page.click("nav li:text-is('list_models')")
            page.fill("textarea", '{"modality": "embedding"}')
            page.click("text=Call list_models")
            page.wait_for_selector("#detail pre:has-text('openai/text-embedding-3-small')")
            page.click("nav li:text-is('get_job')")
            page.fill("textarea", '{"id": "job_missing"}')
            page.click("text=Call get_job")
            page.wait_for_selector("#detail h3.error:text-is('Tool error')")
            assert "No job with id 'job_missing'" in page.inner_text("#detail")
        finally:
            browser.close()
    assert problems == []


def test_an_sse_session_takes_messages_posted_to_another_edge() -> None:
    """Edge workers share the port and replicas sit behind a load balancer: the POST that
    carries a message rarely reaches the process holding its stream."""
    cluster = start_cluster(edges=2)
    try:
        with httpx.Client(timeout=10) as client:
            (stream, lines), path = _open_sse(client, cluster, cluster.admin_key, edge=0)
            try:
                init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
                posted = client.post(root(cluster, 1) + path, json=init, headers=auth(cluster.admin_key))
                assert posted.status_code == 202, posted.text
                assert _next_message(lines)["result"]["serverInfo"]["name"] == "switchboard"
                client.post(root(cluster, 1) + path, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                            headers=auth(cluster.admin_key))
                listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
                assert client.post(root(cluster, 1) + path, json=listed,
                                   headers=auth(cluster.admin_key)).status_code == 202
                assert {tool["name"] for tool in _next_message(lines)["result"]["tools"]} == TOOLS
            finally:
                stream.__exit__(None, None, None)
    finally:
        cleanup(cluster)
