"""The jobs service as a client of the router: one inference request over NATS (any
operation: chat, embeddings, responses, messages, ...), the same message the edge
sends, answered the same way (Reply or Failure)."""

import secrets
import time

import msgspec
import nats.errors
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import (
    OP_CHAT,
    OP_EMBEDDINGS,
    OP_MESSAGES,
    OP_RESPONSES,
    DispatchMeta,
    Failure,
    InferenceRequest,
    Principal,
    Reply,
    decode_reply,
    encode,
)
from libs.runtime.tracing import Tracing


class Outcome(msgspec.Struct, kw_only=True):
    request_id: str
    status: int
    body: bytes = b""
    meta: DispatchMeta | None = None
    latency_ms: float = 0.0
    error: str | None = None
    error_type: str | None = None  # the error envelope's `type` (errors.py), when it failed

    @property
    def cost_micros(self) -> int:
        return self.meta.cost.total_micros if self.meta is not None and self.meta.cost is not None else 0


def chat_body(body: bytes, model: str) -> bytes:
    """`body` as a non-stream request for `model`: a replay or an eval wants the whole answer."""
    payload = msgspec.json.decode(body)
    if not isinstance(payload, dict):
        raise ValueError("the request body is not a JSON object")
    payload["model"] = model
    payload.pop("stream", None)
    payload.pop("stream_options", None)
    return msgspec.json.encode(payload)


def subject_of(operation: str) -> str:
    """The subject the edge publishes this operation on (services/edge inference and surfaces)."""
    if operation in (OP_CHAT, OP_MESSAGES, OP_RESPONSES):
        return subjects.INFER_CHAT
    if operation == OP_EMBEDDINGS:
        return subjects.INFER_EMBEDDINGS
    return subjects.INFER_MODALITY


class RouterClient:
    def __init__(self, nc: Client, timeout_s: float, tracing: Tracing | None = None) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._tracing = tracing

    async def chat(self, principal: Principal, model: str, body: bytes, tag: str | None,
                   traceparent: str | None = None, request_id: str | None = None) -> Outcome:
        return await self.call(principal, OP_CHAT, model, body, tag, traceparent=traceparent, request_id=request_id)

    async def call(self, principal: Principal, operation: str, model: str, body: bytes, tag: str | None, *,
                   traceparent: str | None = None, request_id: str | None = None, batch: bool = False) -> Outcome:
        """One non-stream request; `request_id` fixed by the caller makes a retried request bill once."""
        request_id = request_id or f"req_{secrets.token_hex(12)}"
        message = InferenceRequest(request_id=request_id, operation=operation, model=model, body=body,
                                   principal=principal, tag=tag, traceparent=traceparent, cache="skip", batch=batch)
        subject = subject_of(operation)
        # The job's trace goes on: a PRODUCER span under the request that made the job.
        headers = (self._tracing.producer_headers(subject, Tracing.extract(None, traceparent))
                   if self._tracing is not None and self._tracing.enabled and traceparent else None)
        started = time.perf_counter()
        try:
            msg = await self._nc.request(subject, encode(message), timeout=self._timeout_s, headers=headers)
        except nats.errors.NoRespondersError:
            return Outcome(request_id=request_id, status=503, error="No router is serving requests.",
                           error_type=errors.UNAVAILABLE)
        except nats.errors.TimeoutError:
            return Outcome(request_id=request_id, status=504,
                           error=f"The model did not answer within {self._timeout_s:g}s.", error_type=errors.TIMEOUT)
        latency_ms = (time.perf_counter() - started) * 1000
        reply = decode_reply(msg.data)
        if isinstance(reply, Failure):
            return Outcome(request_id=request_id, status=reply.error.code, meta=reply.meta, latency_ms=latency_ms,
                           error=reply.error.message, error_type=reply.error.type)
        if not isinstance(reply, Reply):
            return Outcome(request_id=request_id, status=502, error="The router answered out of protocol.",
                           error_type=errors.PROVIDER_ERROR)
        if reply.meta is not None and reply.meta.upstream_latency_ms:
            latency_ms = reply.meta.upstream_latency_ms  # the model's time, comparable with a usage row's
        return Outcome(request_id=request_id, status=reply.status, body=reply.body, meta=reply.meta,
                       latency_ms=latency_ms)
