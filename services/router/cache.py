"""Exact response cache: answers keyed by a canonical hash of the request, per account,
in a NATS KV bucket whose TTL expires them.

Only complete, successful answers are stored, always as the non-stream
`chat.completion` (or embeddings) JSON: a streamed miss is assembled into one by
StreamAssembler, and a streamed hit is replayed from it by stream_from_cache.
The cache is an optimisation, so reads and writes never raise: a KV failure is a
miss (logged), never a failed request.
"""

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from libs.contracts import subjects
from libs.contracts.bus.cache import CacheMode
from libs.contracts.bus.inference import OP_EMBEDDINGS, Usage
from libs.runtime.env import nats_replicas
from libs.runtime.kv_scan import scan_all

log = structlog.get_logger()

_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode

# Members that do not change the answer: transport (stream, stream_options), bookkeeping
# (user, metadata, store, service_tier, webhook_url) and the gateway's fallback list.
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "models",
                            "webhook_url"})
_UNSAFE = re.compile(r"[^-_a-zA-Z0-9]")


class CachedAnswer(msgspec.Struct, kw_only=True):
    """One stored answer (msgpack in KV; map-encoded so entries survive field additions)."""

    body: bytes  # complete OpenAI JSON, no gateway `meta` member
    content_type: str = "application/json"
    model: str  # catalog slug that served it
    provider: str
    usage: Usage | None = None  # what the original call consumed; a hit is metered from it at a fraction
    stored_at_ms: int


_encode_answer = msgspec.msgpack.Encoder().encode
_decode_answer = msgspec.msgpack.Decoder(CachedAnswer).decode


class _Sampling(msgspec.Struct):
    temperature: float | None = None
    n: int | None = None


_decode_sampling = msgspec.json.Decoder(_Sampling).decode


def _token(text: str) -> str:
    """`text` as one KV key token. '.' separates tokens (the purge filter `acct.>` must not
    catch account `acct.x`), so only [-_a-zA-Z0-9] pass; every other byte becomes `=XX`.
    Injective: '=' is always escaped, and the empty string becomes a lone '='."""
    return _UNSAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), text) or "="


def _plain(value: Any) -> Any:
    # JSON has one number type: `"temperature": 0` and `0.0` are the same request.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def canonical_body(model: str, body: bytes) -> bytes:
    """The request as hashed: IGNORED_FIELDS and null members dropped (null means the
    default), integral top-level floats as ints, `model` = the requested slug, keys sorted
    at every depth. Undecodable bodies hash as they are (deterministic, and never equal to
    a canonical form, which is always valid JSON)."""
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        return body
    if not isinstance(doc, dict):
        return _encode_sorted(doc)
    doc = {k: _plain(v) for k, v in doc.items() if k not in IGNORED_FIELDS and v is not None}
    doc["model"] = model
    return _encode_sorted(doc)


def cache_key(account_id: str, operation: str, model: str, body: bytes) -> str:
    digest = hashlib.sha256(canonical_body(model, body)).hexdigest()
    return f"{_token(account_id)}.{_token(operation)}.{digest}"


def cacheable(mode: CacheMode, body: bytes, operation: str = "chat") -> bool:
    """Whether this request may be answered from, and stored in, the cache.

    skip: never. force: always. auto: only deterministic requests, i.e. embeddings,
    and chat with `temperature` explicitly 0 and `n` absent or 1. An unset temperature
    means the provider default (1), so it is sampled and not cached.
    """
    if mode == "skip":
        return False
    if mode == "force":
        return True
    if operation == OP_EMBEDDINGS:
        return True
    try:
        sampling = _decode_sampling(body)
    except msgspec.DecodeError:
        return False
    return sampling.temperature == 0 and sampling.n in (None, 1)


def without_meta(body: bytes) -> bytes:
    """`body` without the gateway's `meta` member: a hit gets its own, fresh meta."""
    if b'"meta"' not in body:  # cheap test first; a false positive only costs a decode
        return body
    try:
        doc = _decode(body)
    except msgspec.DecodeError:
        return body
    if isinstance(doc, dict) and "meta" in doc:
        del doc["meta"]
        return _encode(doc)
    return body


class ResponseCache:
    def __init__(self, ttl_s: float = 3600, *, bucket: str = subjects.KV_RESPONSE_CACHE,
                 timeout_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self.bucket = bucket
        self._timeout_s = timeout_s  # bounds a read or write, so a slow KV delays no answer for long
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None

    async def start(self, js: JetStreamContext) -> None:
        try:
            kv = await js.key_value(self.bucket)
            ttl = (await kv.status()).ttl
            if ttl is not None and abs(ttl - self.ttl_s) > 0.001:
                # An existing bucket keeps its TTL (changing it is an operator's call); get() still
                # honours ours, so entries are never served older than configured.
                log.warning("cache_bucket_ttl_differs", bucket=self.bucket, bucket_ttl_s=ttl, ttl_s=self.ttl_s)
        except BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(bucket=self.bucket, ttl=self.ttl_s, history=1,
                                                          replicas=nats_replicas()))
        self._js, self._kv = js, kv

    async def stop(self) -> None:
        self._js = self._kv = None

    async def get(self, key: str) -> CachedAnswer | None:
        if self._kv is None:
            return None
        try:
            entry = await asyncio.wait_for(self._kv.get(key), self._timeout_s)
            if not entry.value:
                return None
            answer = _decode_answer(entry.value)
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("cache_get_failed", key=key, error=repr(exc))
            return None
        # The server removes expired messages on a timer; this keeps the TTL exact.
        if time.time() * 1000 - answer.stored_at_ms > self.ttl_s * 1000:
            return None
        return answer

    async def put(self, key: str, answer: CachedAnswer) -> None:
        if self._kv is None:
            return
        try:
            value = _encode_answer(msgspec.structs.replace(answer, body=without_meta(answer.body)))
            await asyncio.wait_for(self._kv.put(key, value), self._timeout_s)
        except Exception as exc:
            log.warning("cache_put_failed", key=key, error=repr(exc))

    async def purge(self, account_id: str) -> int:
        """Remove every entry of the account; returns how many there were. Raises on a KV
        error: unlike a lookup, a purge the caller asked for must not fail silently.

        nats-py's `keys(filters=...)` lists the whole bucket and filters by substring on
        the client, so the account's entries are counted with a server-side subject filter
        instead, and removed with one filtered stream purge, which, unlike per-key
        deletes, leaves no tombstones behind. Entries written between the two steps are
        removed too but not counted.
        """
        if self._kv is None or self._js is None:
            raise RuntimeError("response cache not started")
        prefix = f"{_token(account_id)}."
        count = len(await scan_all(self._kv, f"{prefix}>", len))
        if count:
            await self._js.purge_stream(f"KV_{self.bucket}", subject=f"$KV.{self.bucket}.{prefix}>")
        return count


@dataclass
class _Choice:
    role: str | None = None
    content: list[str] | None = None  # None: the stream never sent a content string
    refusal: list[str] | None = None
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None
    finish_reason: str | None = None


def _appended(parts: list[str] | None, piece: str) -> list[str]:
    if parts is None:
        return [piece]
    parts.append(piece)
    return parts


class StreamAssembler:
    """Rebuilds the `chat.completion` a stream of `chat.completion.chunk` events stands for,
    so a streamed miss can fill the cache."""

    def __init__(self) -> None:
        self._pending = b""  # an event split across feeds
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._failed = False

    def feed(self, events: bytes) -> None:
        *complete, self._pending = (self._pending + events).replace(b"\r\n", b"\n").split(b"\n\n")
        for event in complete:
            lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            data = b"\n".join(lines)
            if not data or data == b"[DONE]":
                continue
            try:
                chunk = _decode(data)
            except msgspec.DecodeError:
                self._failed = True
                continue
            if isinstance(chunk, dict):
                self._chunk(chunk)

    def _chunk(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk:  # an in-band error event: the answer is incomplete
            self._failed = True
            return
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(name) is not None:
                self._head.setdefault(name, chunk[name])
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            acc = self._choices.setdefault(choice.get("index", 0), _Choice())
            delta = choice.get("delta") or {}
            acc.role = delta.get("role") or acc.role
            if isinstance(delta.get("content"), str):
                acc.content = _appended(acc.content, delta["content"])
            if isinstance(delta.get("refusal"), str):
                acc.refusal = _appended(acc.refusal, delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = acc.tool_calls.setdefault(call.get("index", 0), {
                    "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                slot["type"] = call.get("type") or slot["type"]
                fn = call.get("function") or {}
                slot["function"]["name"] = fn.get("name") or slot["function"]["name"]
                slot["function"]["arguments"] += fn.get("arguments") or ""
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                acc.logprobs = acc.logprobs or {}
                for part, items in logprobs.items():
                    if isinstance(items, list):
                        acc.logprobs.setdefault(part, []).extend(items)
            acc.finish_reason = choice.get("finish_reason") or acc.finish_reason

    def result(self, usage: Usage | None) -> bytes | None:
        """The complete answer, or None when the stream is unusable: no choices, an error
        event, or a choice without finish_reason (cut short, so not worth caching).
        Usage: the provider's own usage object if a chunk carried one, else `usage`."""
        if self._failed or not self._choices or any(c.finish_reason is None for c in self._choices.values()):
            return None
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            message: dict[str, Any] = {
                "role": acc.role or "assistant",
                "content": "".join(acc.content) if acc.content is not None else None,
                "refusal": "".join(acc.refusal) if acc.refusal is not None else None,
            }
            if acc.tool_calls:
                message["tool_calls"] = [acc.tool_calls[i] for i in sorted(acc.tool_calls)]
            choices.append({"index": index, "message": message, "logprobs": acc.logprobs,
                            "finish_reason": acc.finish_reason})
        body: dict[str, Any] = {"id": self._head.get("id", ""), "object": "chat.completion",
                                "created": self._head.get("created", 0), "model": self._head.get("model", ""),
                                "choices": choices}
        if self._usage is not None:
            body["usage"] = self._usage
        elif usage is not None:
            body["usage"] = openai_usage(usage)
        for name in ("service_tier", "system_fingerprint"):
            if name in self._head:
                body[name] = self._head[name]
        return _encode(body)


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.input_units, "completion_tokens": usage.output_units,
            "total_tokens": usage.input_units + usage.output_units,
            "prompt_tokens_details": {"cached_tokens": usage.cached_units}}


def _chunk_head(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields every chunk of a replayed stream repeats, from the cached `chat.completion`."""
    head = {"id": doc.get("id", ""), "object": "chat.completion.chunk", "created": doc.get("created", 0),
            "model": doc.get("model", "")}
    for name in ("service_tier", "system_fingerprint"):
        if name in doc:
            head[name] = doc[name]
    return head


def usage_chunk_from_cache(body: bytes, usage: Usage) -> bytes:
    """The usage chunk (`choices: []`) closing a replayed stream: the same head as its other chunks,
    as `id`, `created` and `model` are required in every chunk. Raises msgspec.DecodeError."""
    return _encode({**_chunk_head(_decode(body)), "choices": [], "usage": openai_usage(usage)})


def stream_from_cache(body: bytes) -> bytes:
    """SSE `chat.completion.chunk` events replaying a cached `chat.completion`, per choice:
    a role chunk, the whole content at once, the refusal, one delta per tool call, then the
    finish chunk (carrying any logprobs). No usage chunk and no [DONE]: the dispatcher
    writes the tail. Embeddings are never streamed (their body has no choices: b"").
    Raises msgspec.DecodeError if `body` is not JSON."""
    doc = _decode(body)
    head = _chunk_head(doc)
    out = bytearray()

    def event(index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        out.extend(b"data: " + _encode({**head, "choices": [choice]}) + b"\n\n")

    for choice in doc.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        content = message.get("content")
        event(index, {"role": message.get("role") or "assistant", "content": "" if isinstance(content, str) else None})
        if content:
            event(index, {"content": content})
        if message.get("refusal"):
            event(index, {"refusal": message["refusal"]})
        for position, call in enumerate(message.get("tool_calls") or ()):
            event(index, {"tool_calls": [{"index": position, **call}]})
        event(index, {}, choice.get("finish_reason") or "stop", choice.get("logprobs"))
    return bytes(out)
