"""The jobs service as a client of the router's long-running API (bus/longrun.py): one
request/reply per step, answered by a LongRunStatus, or a failure said to be
transient (try again later) or final (the job fails with it)."""

import msgspec
import nats.errors
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus import longrun
from libs.contracts.bus.inference import Failure, Principal, decode_reply
from libs.contracts.errors import ErrorBody

# What a router answers when it, or the provider behind it, is away for now.
TRANSIENT_CODES = frozenset({408, 429, 500, 502, 503, 504})


class StepFailed(msgspec.Struct, frozen=True):
    error: ErrorBody
    transient: bool


class LongRunClient:
    def __init__(self, nc: Client, timeout_s: float) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def call(self, op: str, job_id: str, principal: Principal, *, modality: str = longrun.MODALITY_VIDEO,
                   model: str = "", body: bytes = b"", handle: longrun.LongRunHandle | None = None,
                   tag: str | None = None, traceparent: str | None = None) -> longrun.LongRunStatus | StepFailed:
        request = longrun.LongRunRequest(op=op, job_id=job_id, principal=principal, modality=modality, model=model,
                                         body=body, handle=handle, tag=tag, traceparent=traceparent)
        try:
            msg = await self._nc.request(subjects.INFER_LONGRUN, longrun.encode(request), timeout=self._timeout_s)
        except nats.errors.NoRespondersError:
            return StepFailed(ErrorBody("No router is serving long-running generations.", errors.UNAVAILABLE, 503),
                              transient=True)
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            return StepFailed(ErrorBody(f"The router did not answer '{op}' within {self._timeout_s:g}s.",
                                        errors.TIMEOUT, 504), transient=True)
        return _decode(msg.data)


def _decode(data: bytes) -> longrun.LongRunStatus | StepFailed:
    # The router answers a LongRunStatus, or the bus Failure every service speaks.
    try:
        return longrun.decode_status(data)
    except msgspec.DecodeError:
        pass
    try:
        reply = decode_reply(data)
    except msgspec.DecodeError:
        return StepFailed(ErrorBody("The router answered out of protocol.", errors.PROVIDER_ERROR, 502),
                          transient=True)
    if isinstance(reply, Failure):
        return StepFailed(reply.error, transient=reply.error.code in TRANSIENT_CODES)
    return StepFailed(ErrorBody("The router answered out of protocol.", errors.PROVIDER_ERROR, 502), transient=True)
