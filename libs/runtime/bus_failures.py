"""What a service answers when its own call onto the bus fails while serving a request.

A KV write during a JetStream leader election, a stream with no responder for a moment,
a connection being re-established: these are the bus being briefly unavailable, not a
fault in the request or the service, so the caller gets a 503 (the SDKs retry it) instead
of a 500. Anything else is the service's own fault: a 500 naming its log.
"""

import nats.errors
import nats.js.errors

from libs.contracts import errors
from libs.contracts.bus.inference import Failure
from libs.contracts.errors import ErrorBody

_UNAVAILABLE = (
    nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError, nats.js.errors.ServerError,
    TimeoutError, ConnectionError,
)
RETRY_AFTER_S = 1


def failure_of(exc: BaseException, service: str) -> Failure:
    if isinstance(exc, _UNAVAILABLE):
        return Failure(ErrorBody(f"The {service} could not reach its message bus in time; retry shortly.",
                                 errors.UNAVAILABLE, 503), retry_after=RETRY_AFTER_S)
    return Failure(ErrorBody(f"The {service} failed to answer; see its log.", errors.INTERNAL, 500))
