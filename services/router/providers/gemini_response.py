"""Gemini answers -> OpenAI shapes, as pure functions (requests go the other way in gemini_translate.py).

Response, Gemini -> OpenAI: one choice per candidate; text parts concatenated (parts marked
`thought` are dropped: OpenAI's format has no place for them); functionCall parts -> tool_calls
`call_<hex>` with the JSON-encoded args; finishReason STOP -> stop (tool_calls when the candidate
called functions), MAX_TOKENS -> length, SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII,
IMAGE_SAFETY -> content_filter, anything else -> stop; a prompt blocked by promptFeedback
(no candidates) -> one empty choice with content_filter. usageMetadata: prompt_tokens =
promptTokenCount, completion_tokens = candidatesTokenCount + thoughtsTokenCount (reported as
reasoning_tokens), cached_tokens = cachedContentTokenCount. Thought signatures and logprobs
are not carried over.

Embeddings: the answer's float vectors, or little-endian float32 base64 with
`encoding_format: "base64"` as OpenAI sends them. batchEmbedContents reports no token count,
so prompt_tokens is usageMetadata.promptTokenCount when present and 0 otherwise (such calls
meter as free).
"""

import base64
import os
import sys
import time
from array import array
from typing import Any, Final

import msgspec

from libs.contracts.bus.inference import Usage
from services.router.providers.gemini_translate import TranslationError

_encode = msgspec.json.encode

_FINISH: Final = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def new_chat_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def finish_reason(reason: str, called: bool) -> str:
    mapped = _FINISH.get(reason, "stop")
    return "tool_calls" if called and mapped == "stop" else mapped


def _index(candidate: dict[str, Any], position: int) -> int:
    index = candidate.get("index", position)
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _output(candidate: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """A candidate's text pieces and its function calls as OpenAI tool_calls."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append({"id": "call_" + os.urandom(12).hex(), "type": "function",
                          "function": {"name": call.get("name") or "",
                                       "arguments": _encode(call.get("args") or {}).decode()}})
    return texts, calls


def usage_of(metadata: Any) -> tuple[dict[str, Any], Usage]:
    """OpenAI's usage object and the gateway's Usage from a usageMetadata object."""
    meta = metadata if isinstance(metadata, dict) else {}

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) and value > 0 else 0

    prompt, cached, thoughts = count("promptTokenCount"), count("cachedContentTokenCount"), count("thoughtsTokenCount")
    completion = count("candidatesTokenCount") + thoughts
    body = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}
    return body, Usage(input_units=prompt, output_units=completion, cached_units=cached)


def chat_response(data: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage | None]:
    """A chat.completion for a generateContent answer."""
    candidates = data.get("candidates") or []
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise TranslationError("'candidates' is not an array of objects")
    choices = []
    for position, candidate in enumerate(candidates):
        texts, calls = _output(candidate)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                                   "refusal": None}
        if calls:
            message["tool_calls"] = calls
        choices.append({"index": _index(candidate, position), "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason") or "STOP", bool(calls))})
    if not choices:
        feedback = data.get("promptFeedback")
        if not (isinstance(feedback, dict) and feedback.get("blockReason")):
            raise TranslationError("the answer has neither candidates nor a block reason")
        choices.append({"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    choices.sort(key=lambda choice: choice["index"])
    out = {"id": new_chat_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
           "choices": choices}
    if "usageMetadata" not in data:
        return out, None
    out["usage"], usage = usage_of(data["usageMetadata"])
    return out, usage


class ChatStream:
    """streamGenerateContent chunks in, OpenAI chat.completion.chunk SSE events out.

    Per candidate: a role chunk first, then text deltas, each function call as one complete
    tool_call delta, then a finish chunk. The usage chunk is not emitted: close() returns it.
    """

    def __init__(self, model: str) -> None:
        self._head = {"id": new_chat_id(), "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model}
        self._calls: dict[int, int] = {}  # candidate index -> tool calls so far (its presence: role sent)
        self._finished: set[int] = set()
        self._metadata: Any = None

    def _event(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + _encode({**self._head, "choices": [choice]}) + b"\n\n"

    def _open(self, index: int) -> bytes:
        if index in self._calls:
            return b""
        self._calls[index] = 0
        return self._event(index, {"role": "assistant", "content": ""})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if "usageMetadata" in chunk:
            self._metadata = chunk["usageMetadata"]
        candidates = chunk.get("candidates") or []
        if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
            raise TranslationError("'candidates' is not an array of objects")
        out = bytearray()
        feedback = chunk.get("promptFeedback")
        if not candidates and isinstance(feedback, dict) and feedback.get("blockReason") and not self._calls:
            out += self._open(0) + self._event(0, {}, "content_filter")
            self._finished.add(0)
        for position, candidate in enumerate(candidates):
            index = _index(candidate, position)
            out += self._open(index)
            texts, calls = _output(candidate)
            if texts:
                out += self._event(index, {"content": "".join(texts)})
            for call in calls:
                out += self._event(index, {"tool_calls": [{"index": self._calls[index], **call}]})
                self._calls[index] += 1
            reason = candidate.get("finishReason")
            if reason and index not in self._finished:
                self._finished.add(index)
                out += self._event(index, {}, finish_reason(reason, self._calls[index] > 0))
        return bytes(out)

    def close(self) -> tuple[bytes | None, Usage | None]:
        """The usage-only chunk and the usage, once the upstream stream has ended; a TranslationError
        if it ended without its end marker (a finishReason for every candidate)."""
        if not self._calls:
            raise TranslationError("ended without any candidate")
        if set(self._calls) - self._finished:
            raise TranslationError("ended without its end marker (a finish reason): the answer is incomplete")
        if self._metadata is None:
            return None, None
        body, usage = usage_of(self._metadata)
        return _encode({**self._head, "choices": [], "usage": body}), usage

    def delivered(self) -> Usage | None:
        """The usage so far (Gemini's usageMetadata is cumulative), for a stream that broke off."""
        return usage_of(self._metadata)[1] if self._metadata is not None else None


def embeddings_response(answers: list[dict[str, Any]], model: str, fmt: str, count: int
                        ) -> tuple[dict[str, Any], Usage]:
    """An OpenAI embeddings list from the batchEmbedContents answers (in request order)."""
    vectors = []
    tokens = 0
    for answer in answers:
        embeddings = answer.get("embeddings")
        if not isinstance(embeddings, list):
            raise TranslationError("'embeddings' is not an array")
        for embedding in embeddings:
            values = embedding.get("values") if isinstance(embedding, dict) else None
            if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
                raise TranslationError("an embedding has no numeric 'values'")
            vectors.append(values)
        tokens += usage_of(answer.get("usageMetadata"))[1].input_units
    if len(vectors) != count:
        raise TranslationError(f"{len(vectors)} embeddings for {count} inputs")
    data = [{"object": "embedding", "index": i, "embedding": _vector(v, fmt)} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}, Usage(input_units=tokens)


def _vector(values: list[float], fmt: str) -> list[float] | str:
    if fmt != "base64":
        return values
    packed = array("f", values)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
