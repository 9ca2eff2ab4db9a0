"""The exact response cache: canonical keys, the x-cache modes, the KV store against a real
nats-server (round trip, TTL, purge, failures are misses), and the stream <-> complete
answer conversions."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from nats.js.kv import _is_key_valid

from libs.contracts.bus.cache import (
    PurgeRequest,
    PurgeResult,
    decode_purge_reply,
    decode_purge_request,
    encode,
)
from libs.contracts.bus.inference import Usage
from services.router.cache import (
    CachedAnswer,
    ResponseCache,
    StreamAssembler,
    cache_key,
    cacheable,
    stream_from_cache,
    usage_chunk_from_cache,
)
from tools.cli.processes import free_port, start_nats

dumps = msgspec.json.encode
loads = msgspec.json.decode
MESSAGES = [{"role": "user", "content": "Hi"}]


def body(**fields: Any) -> bytes:
    return dumps({"model": "openai/gpt-4o-mini", "messages": MESSAGES, **fields})


# ---------------------------------------------------------------- keys


def test_key_ignores_order_transport_and_bookkeeping() -> None:
    base = cache_key("root", "chat", "gpt-4o-mini", body(temperature=0))
    reordered = dumps({"temperature": 0, "messages": MESSAGES, "model": "openai/gpt-4o-mini"})
    variants = [
        reordered,
        body(temperature=0, stream=True, stream_options={"include_usage": True}),
        body(temperature=0, user="alice", metadata={"a": "b"}, store=False, service_tier="auto"),
        body(temperature=0, models=["anthropic/claude"], seed=None),
        body(temperature=0.0),
        b'{ "messages" : [ {"content":"Hi", "role":"user"} ] ,"temperature":0, "model":"other"}',
    ]
    for variant in variants:
        assert cache_key("root", "chat", "gpt-4o-mini", variant) == base, variant


def test_key_differs_on_what_changes_the_answer() -> None:
    base = cache_key("root", "chat", "gpt-4o-mini", body(temperature=0))
    others = {
        cache_key("root", "chat", "gpt-4o-mini", dumps({"model": "x", "messages": [{"role": "user", "content": "Ho"}],
                                                         "temperature": 0})),
        cache_key("root", "chat", "gpt-4o-mini", body(temperature=0, max_tokens=5)),
        cache_key("root", "chat", "gpt-4o", body(temperature=0)),
        cache_key("sa_abc", "chat", "gpt-4o-mini", body(temperature=0)),
        cache_key("root", "embeddings", "gpt-4o-mini", body(temperature=0)),
    }
    assert base not in others and len(others) == 5


def test_key_shape_and_escaping() -> None:
    key = cache_key("root", "chat", "m", body())
    account, operation, digest = key.split(".")
    assert (account, operation, len(digest)) == ("root", "chat", 64)
    assert cache_key("sa_abc", "chat", "m", body()).startswith("sa_abc.chat.")
    odd = ["a.b", "a/b", "a=2Eb", "a b", "ü", "", "*", ">"]
    keys = [cache_key(account, "chat", "m", body()) for account in odd]
    assert all(_is_key_valid(k) and k.count(".") == 2 for k in keys)
    assert len({k.split(".")[0] for k in keys}) == len(odd)  # escaping is injective
    assert cache_key("x", "chat", "m", b"not json") != cache_key("x", "chat", "m", b"also not json")


@pytest.mark.parametrize(("mode", "fields", "expected"), [
    ("skip", {"temperature": 0}, False),
    ("force", {}, True),
    ("force", {"temperature": 1.2, "n": 3}, True),
    ("auto", {"temperature": 0}, True),
    ("auto", {"temperature": 0.0, "n": 1}, True),
    ("auto", {}, False),  # unset: the provider default, 1
    ("auto", {"temperature": None}, False),
    ("auto", {"temperature": 0.7}, False),
    ("auto", {"temperature": 0, "n": 2}, False),
])
def test_cacheable(mode: Any, fields: dict[str, Any], expected: bool) -> None:
    assert cacheable(mode, body(**fields)) is expected


def test_cacheable_edge_cases() -> None:
    assert cacheable("auto", b"{broken") is False
    assert cacheable("auto", dumps({"model": "e", "input": "x"}), "embeddings") is True  # deterministic
    assert cacheable("skip", dumps({"model": "e", "input": "x"}), "embeddings") is False


def test_purge_contract_round_trip() -> None:
    assert decode_purge_request(encode(PurgeRequest("root"))) == PurgeRequest("root")
    assert decode_purge_reply(encode(PurgeResult(4))) == PurgeResult(4)


# ---------------------------------------------------------------- KV store


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = start_nats(Path(tmp_path_factory.mktemp("response_cache")), port, None)
    yield f"nats://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


MakeCache = Callable[..., Awaitable[ResponseCache]]


@pytest.fixture
async def make_cache(nc: Client) -> MakeCache:
    async def make(ttl_s: float = 60, bucket: str | None = None) -> ResponseCache:
        cache = ResponseCache(ttl_s, bucket=bucket or f"test_cache_{uuid.uuid4().hex[:8]}")
        await cache.start(nc.jetstream())
        return cache
    return make


def answer(text: str = "Hello", **fields: Any) -> CachedAnswer:
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                               "finish_reason": "stop"}], **fields}
    return CachedAnswer(body=dumps(completion), model="openai/gpt-4o-mini", provider="openai",
                        usage=Usage(5, 2), stored_at_ms=time.time_ns() // 1_000_000)


async def test_put_get_round_trip(make_cache: MakeCache) -> None:
    cache = await make_cache()
    key = cache_key("root", "chat", "openai/gpt-4o-mini", body(temperature=0))
    assert await cache.get(key) is None
    stored = answer()
    await cache.put(key, stored)
    assert await cache.get(key) == stored
    # The gateway's meta member is never stored: a hit gets its own.
    await cache.put(key, answer(meta={"request_id": "r1", "cost": {"total_micros": 9}}))
    got = await cache.get(key)
    assert got is not None and "meta" not in loads(got.body) and loads(got.body) == loads(stored.body)


async def test_entries_expire_after_ttl(nc: Client, make_cache: MakeCache) -> None:
    cache = await make_cache(ttl_s=1)
    kv = await nc.jetstream().key_value(cache.bucket)
    assert (await kv.status()).ttl == 1
    key = cache_key("root", "chat", "m", body())
    await cache.put(key, answer())
    assert await cache.get(key) is not None
    await asyncio.sleep(1.5)
    assert await cache.get(key) is None
    # The server expired it too, not only our stored_at check.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            await kv.get(key)
        except KeyNotFoundError:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the server kept an expired entry")


async def test_existing_bucket_keeps_its_config(nc: Client, make_cache: MakeCache) -> None:
    first = await make_cache(ttl_s=30)
    key = cache_key("root", "chat", "m", body())
    await first.put(key, answer())
    again = await make_cache(ttl_s=30, bucket=first.bucket)
    assert await again.get(key) is not None
    await make_cache(ttl_s=99, bucket=first.bucket)  # a different TTL is logged, not applied
    assert (await (await nc.jetstream().key_value(first.bucket)).status()).ttl == 30


async def test_purge_removes_only_that_account(make_cache: MakeCache) -> None:
    cache = await make_cache()
    mine = [cache_key("sa_abc", op, "m", body(i=i)) for i, op in enumerate(["chat", "chat", "embeddings"])]
    theirs = [cache_key(account, "chat", "m", body()) for account in ("sa_abcd", "sa_abc.x", "root", "xsa_abc")]
    for key in mine + theirs:
        await cache.put(key, answer())
    assert await cache.purge("sa_abc") == 3
    assert [await cache.get(key) for key in mine] == [None] * 3
    assert all([await cache.get(key) is not None for key in theirs])
    assert await cache.purge("sa_abc") == 0
    assert await cache.purge("nobody") == 0
    await cache.put(mine[0], answer())  # the account can fill its cache again
    assert await cache.get(mine[0]) is not None


async def test_failures_are_misses(nats_url: str, make_cache: MakeCache) -> None:
    assert await ResponseCache().get("root.chat.x") is None  # never started
    conn = await nats.connect(nats_url)
    cache = ResponseCache(60, bucket=f"test_cache_{uuid.uuid4().hex[:8]}")
    await cache.start(conn.jetstream())
    key = cache_key("root", "chat", "m", body())
    await cache.put(key, answer())
    await conn.close()
    assert await cache.get(key) is None
    await cache.put(key, answer())  # logged, not raised
    with pytest.raises(Exception):  # noqa: B017 - an explicit purge must not fail silently
        await cache.purge("root")
    await cache.stop()
    assert await cache.get(key) is None


# ---------------------------------------------------------------- streams


def sse(chunk_id: str, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini-2024",
             "service_tier": "default", "system_fingerprint": "fp_1", "choices": choices, **extra}
    return b"data: " + dumps(chunk) + b"\n\n"


def delta(index: int, content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": content, "logprobs": None, "finish_reason": finish}


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}


def completion(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "chatcmpl-9", "object": "chat.completion", "created": 1700000000,
                           "model": "gpt-4o-mini-2024", "choices": choices}
    if usage is not None:
        doc["usage"] = usage
    return doc | {"service_tier": "default", "system_fingerprint": "fp_1"}


def message(content: str | None, **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "refusal": None, **extra}


def test_assembler_matches_non_stream_answer() -> None:
    events = [
        sse("chatcmpl-9", [delta(0, {"role": "assistant", "content": "", "refusal": None})]),
        sse("chatcmpl-9", [delta(1, {"role": "assistant", "content": "", "refusal": None})]),
        sse("chatcmpl-9", [delta(0, {"content": "Hello"})]),
        sse("chatcmpl-9", [delta(1, {"content": "Bon"})]),
        sse("chatcmpl-9", [delta(0, {"content": " world"})]) + sse("chatcmpl-9", [delta(1, {"content": "jour"})]),
        sse("chatcmpl-9", [delta(0, {}, "stop")]),
        sse("chatcmpl-9", [delta(1, {}, "length")]),
    ]
    assembler = StreamAssembler()
    joined = b"".join(events)
    assembler.feed(joined[:37])  # an event split across feeds
    assembler.feed(joined[37:])
    result = assembler.result(Usage(input_units=9, output_units=4, cached_units=2))
    assert result is not None
    assert loads(result) == completion(
        [{"index": 0, "message": message("Hello world"), "logprobs": None, "finish_reason": "stop"},
         {"index": 1, "message": message("Bonjour"), "logprobs": None, "finish_reason": "length"}],
        {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 2}})


def test_assembler_builds_tool_calls_from_fragments() -> None:
    args = '{"city": "Paris", "unit": "celsius"}'
    assembler = StreamAssembler()
    assembler.feed(sse("chatcmpl-9", [delta(0, {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, **CALL}], "refusal": None})]))
    for i in range(0, len(args), 7):
        fragment = {"index": 0, "function": {"arguments": args[i:i + 7]}}
        assembler.feed(sse("chatcmpl-9", [delta(0, {"tool_calls": [fragment]})]))
    assembler.feed(sse("chatcmpl-9", [delta(0, {}, "tool_calls")]))
    # A usage chunk, if fed, is the provider's own and wins over the argument; [DONE] is ignored.
    raw_usage = {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assembler.feed(sse("chatcmpl-9", [], usage=raw_usage) + b"data: [DONE]\n\n")
    result = assembler.result(None)
    assert result is not None
    call = {**CALL, "function": {"name": "get_weather", "arguments": args}}
    assert loads(result) == completion(
        [{"index": 0, "message": message(None, tool_calls=[call]), "logprobs": None, "finish_reason": "tool_calls"}],
        raw_usage)


def test_assembler_refuses_unusable_streams() -> None:
    assert StreamAssembler().result(None) is None
    cut = StreamAssembler()
    cut.feed(sse("c", [delta(0, {"role": "assistant", "content": "Hel"})]))
    assert cut.result(Usage(1, 1)) is None  # no finish_reason: cut short
    failed = StreamAssembler()
    failed.feed(sse("c", [delta(0, {"content": "Hi"}, "stop")]))
    failed.feed(b'data: {"error": {"message": "upstream died", "type": "provider_error"}}\n\n')
    assert failed.result(None) is None


def test_stream_from_cache_round_trips() -> None:
    call = {**CALL, "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    cached = completion([
        {"index": 0, "message": message("Hello world"), "logprobs": None, "finish_reason": "stop"},
        {"index": 1, "message": message(None, tool_calls=[call, {**call, "id": "call_2"}]), "logprobs": None,
         "finish_reason": "tool_calls"},
        {"index": 2, "message": message(""), "logprobs": None, "finish_reason": "length"},
    ], {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13})
    events = stream_from_cache(dumps(cached))
    assert b"[DONE]" not in events and b'"usage"' not in events
    chunks = [loads(e.removeprefix(b"data: ")) for e in events.split(b"\n\n") if e]
    assert all(c["object"] == "chat.completion.chunk" and len(c["choices"]) == 1 for c in chunks)
    assembler = StreamAssembler()
    assembler.feed(events)
    result = assembler.result(None)
    assert result is not None
    replayed = loads(result)
    assert replayed["choices"] == cached["choices"]
    assert {k: replayed[k] for k in ("id", "created", "model")} == {k: cached[k] for k in ("id", "created", "model")}


def test_the_usage_chunk_of_a_replay_is_one_of_its_chunks() -> None:
    cached = completion([{"index": 0, "message": message("Hi"), "logprobs": None, "finish_reason": "stop"}],
                        {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3})
    head = loads(stream_from_cache(dumps(cached)).split(b"\n\n")[0].removeprefix(b"data: "))
    chunk = loads(usage_chunk_from_cache(dumps(cached), Usage(2, 1)))
    # id, created and model are required in every chunk (OpenAI's CreateChatCompletionStreamResponse).
    assert {k: chunk[k] for k in ("id", "object", "created", "model")} == {
        k: head[k] for k in ("id", "object", "created", "model")}
    assert chunk["choices"] == [] and chunk["usage"]["total_tokens"] == 3


def test_embeddings_are_never_streamed() -> None:
    assert stream_from_cache(dumps({"object": "list", "data": [{"embedding": [0.1]}], "model": "e"})) == b""
