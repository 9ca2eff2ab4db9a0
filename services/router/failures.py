"""Upstream failures -> the client's error (status, contract type, message).

The one place that decides what a provider's failure looks like to our
clients; see the error table in shared/contract/aigateway-llms.txt.
"""

from libs.contracts import errors
from libs.contracts.bus.inference import DispatchMeta, Failure
from libs.contracts.errors import ErrorBody
from services.router.providers.base import UpstreamError


def failure(status: int, type_: str, message: str, retry_after: int | None = None,
            meta: DispatchMeta | None = None, param: str | None = None) -> Failure:
    return Failure(ErrorBody(message=message, type=type_, code=status, param=param), retry_after, meta)


def from_upstream(exc: UpstreamError, provider: str, meta: DispatchMeta | None = None) -> Failure:
    if exc.kind == "saturated":  # ours, not the provider's: the SDKs retry a 503 by themselves
        return failure(503, errors.UNAVAILABLE, f"The gateway is saturated: {exc.message}.",
                       retry_after=exc.retry_after or 1, meta=meta)
    if exc.kind == "timeout":
        return failure(504, errors.TIMEOUT,
                       f"Provider {provider} timed out: {exc.message}. Retry, or lower max_tokens.",
                       meta=meta)
    if exc.kind in ("connection", "malformed"):
        if exc.status == 400:
            return failure(400, errors.INVALID_REQUEST, exc.message, meta=meta)
        return failure(502, errors.PROVIDER_ERROR, f"Provider {provider} failed: {exc.message}", meta=meta)
    status = exc.status or 502
    if status == 429:
        return failure(429, errors.RATE_LIMIT,
                       f"Provider {provider} is rate limiting: {exc.message}. Honor Retry-After.",
                       retry_after=exc.retry_after if exc.retry_after is not None else 1, meta=meta)
    if status >= 500:
        return failure(502, errors.PROVIDER_ERROR,
                       f"Provider {provider} returned {status}: {exc.message.rstrip('.')}. "
                       "See /v1/health/providers.", meta=meta)
    if status in (401, 403):
        return failure(502, errors.PROVIDER_ERROR,
                       f"Provider {provider} rejected the gateway's credentials ({status}); "
                       "the operator must fix the provider key.", meta=meta)
    if status == 404:
        return failure(404, errors.MODEL_NOT_FOUND,
                       f"Provider {provider} does not serve this model: {exc.message}. "
                       "List models with GET /v1/models.", meta=meta)
    if status in (400, 413, 422):
        return failure(status, errors.INVALID_REQUEST, f"Provider {provider}: {exc.message}", meta=meta)
    return failure(400, errors.INVALID_REQUEST,
                   f"Provider {provider} refused the request ({status}): {exc.message}", meta=meta)
