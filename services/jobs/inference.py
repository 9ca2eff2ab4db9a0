"""The jobs service as a client of the router: one chat request over NATS, the
same message the edge sends, answered the same way (Reply or Failure)."""

import secrets
import time

import msgspec
import nats.errors
from nats.aio.client import Client

from libs.contracts import subjects
from libs.contracts.bus.inference import (
    OP_CHAT,
    DispatchMeta,
    Failure,
    InferenceRequest,
    Principal,
    Reply,
    decode_reply,
    encode,
)


class Outcome(msgspec.Struct, kw_only=True):
    request_id: str
    status: int
    body: bytes = b""
    meta: DispatchMeta | None = None
    latency_ms: float = 0.0
    error: str | None = None

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


class RouterClient:
    def __init__(self, nc: Client, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def chat(self, principal: Principal, model: str, body: bytes, tag: str | None,
                   traceparent: str | None = None) -> Outcome:
        request_id = f"req_{secrets.token_hex(12)}"
        message = InferenceRequest(request_id=request_id, operation=OP_CHAT, model=model, body=body,
                                   principal=principal, tag=tag, traceparent=traceparent, cache="skip")
        started = time.perf_counter()
        try:
            msg = await self._nc.request(subjects.INFER_CHAT, encode(message), timeout=self._timeout_s)
        except nats.errors.NoRespondersError:
            return Outcome(request_id=request_id, status=503, error="No router is serving requests.")
        except nats.errors.TimeoutError:
            return Outcome(request_id=request_id, status=504,
                           error=f"The model did not answer within {self._timeout_s:g}s.")
        latency_ms = (time.perf_counter() - started) * 1000
        reply = decode_reply(msg.data)
        if isinstance(reply, Failure):
            return Outcome(request_id=request_id, status=reply.error.code, meta=reply.meta, latency_ms=latency_ms,
                           error=reply.error.message)
        if not isinstance(reply, Reply):
            return Outcome(request_id=request_id, status=502, error="The router answered out of protocol.")
        if reply.meta is not None and reply.meta.upstream_latency_ms:
            latency_ms = reply.meta.upstream_latency_ms  # the model's time, comparable with a usage row's
        return Outcome(request_id=request_id, status=reply.status, body=reply.body, meta=reply.meta,
                       latency_ms=latency_ms)
