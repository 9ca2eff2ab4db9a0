"""The OpenAI-shaped error envelope and the gateway's error vocabulary.

The contract (shared/contract/aigateway-openapi.json, components.responses.Error)
fixes the `type` values; `code` carries the HTTP status as an integer.
"""

from typing import Final

import msgspec

INVALID_REQUEST: Final = "invalid_request_error"
AUTHENTICATION: Final = "authentication_error"
PERMISSION: Final = "permission_error"
BUDGET_EXCEEDED: Final = "budget_exceeded"
MODEL_NOT_FOUND: Final = "model_not_found"
RATE_LIMIT: Final = "rate_limit_error"
PROVIDER_ERROR: Final = "provider_error"
TIMEOUT: Final = "timeout_error"
# Not in the contract's enum: the gateway itself cannot serve (no router
# reachable, NATS down). 503 makes the official SDKs retry on their own.
UNAVAILABLE: Final = "service_unavailable_error"
INTERNAL: Final = "internal_error"


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    code: int
    param: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


def error_json(body: ErrorBody) -> bytes:
    """Encode an error as the public JSON envelope."""
    return msgspec.json.encode(ErrorEnvelope(body))
