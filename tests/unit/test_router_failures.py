"""services.router.failures.from_upstream: every row of the upstream-failure table."""

import pytest

from libs.contracts import errors
from libs.contracts.bus.inference import DispatchMeta, Failure
from services.router.failures import failure, from_upstream
from services.router.providers.base import UpstreamError

PROVIDER = "acme"


def _map(exc: UpstreamError, meta: DispatchMeta | None = None) -> Failure:
    result = from_upstream(exc, PROVIDER, meta)
    assert isinstance(result, Failure)
    assert result.error.param is None
    return result


def test_timeout_is_504() -> None:
    f = _map(UpstreamError("timeout", "no answer in time"))
    assert (f.error.code, f.error.type) == (504, errors.TIMEOUT)
    assert "acme timed out: no answer in time" in f.error.message
    assert f.retry_after is None


@pytest.mark.parametrize("kind", ["connection", "malformed"])
def test_connection_and_malformed_are_502(kind: str) -> None:
    f = _map(UpstreamError(kind, "went away"))
    assert (f.error.code, f.error.type) == (502, errors.PROVIDER_ERROR)
    assert f.error.message == "Provider acme failed: went away"


def test_malformed_request_body_with_status_400_is_the_clients_fault() -> None:
    f = _map(UpstreamError("malformed", "request body is not a JSON object", status=400))
    assert (f.error.code, f.error.type) == (400, errors.INVALID_REQUEST)
    assert f.error.message == "request body is not a JSON object"


@pytest.mark.parametrize(("retry_after", "expected"), [(7, 7), (0, 0), (None, 1)])
def test_429_is_rate_limit_with_retry_after(retry_after: int | None, expected: int) -> None:
    f = _map(UpstreamError("status", "slow down", status=429, retry_after=retry_after))
    assert (f.error.code, f.error.type) == (429, errors.RATE_LIMIT)
    assert f.retry_after == expected
    assert "acme is rate limiting: slow down" in f.error.message


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_5xx_is_502_provider_error_naming_the_status(status: int) -> None:
    f = _map(UpstreamError("status", "overloaded.", status=status))
    assert (f.error.code, f.error.type) == (502, errors.PROVIDER_ERROR)
    assert f"acme returned {status}: overloaded." in f.error.message
    assert ".." not in f.error.message
    assert f.retry_after is None


def test_status_kind_without_status_is_502() -> None:
    f = _map(UpstreamError("status", "weird"))
    assert (f.error.code, f.error.type) == (502, errors.PROVIDER_ERROR)
    assert "returned 502" in f.error.message


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_502_about_credentials(status: int) -> None:
    f = _map(UpstreamError("status", "Incorrect API key provided: sk-live-SECRET", status=status))
    assert (f.error.code, f.error.type) == (502, errors.PROVIDER_ERROR)
    assert "credentials" in f.error.message and f"({status})" in f.error.message
    # The provider's text (which may echo the operator's key) is not passed to the client.
    assert "SECRET" not in f.error.message


def test_404_is_model_not_found() -> None:
    f = _map(UpstreamError("status", "The model `gpt-9` does not exist", status=404))
    assert (f.error.code, f.error.type) == (404, errors.MODEL_NOT_FOUND)
    assert "gpt-9" in f.error.message and "/v1/models" in f.error.message


@pytest.mark.parametrize("status", [400, 413, 422])
def test_client_errors_keep_their_status(status: int) -> None:
    f = _map(UpstreamError("status", "max_tokens is too large", status=status))
    assert (f.error.code, f.error.type) == (status, errors.INVALID_REQUEST)
    assert f.error.message == "Provider acme: max_tokens is too large"


@pytest.mark.parametrize("status", [418, 409, 402])
def test_other_4xx_become_400(status: int) -> None:
    f = _map(UpstreamError("status", "teapot", status=status))
    assert (f.error.code, f.error.type) == (400, errors.INVALID_REQUEST)
    assert f"({status}): teapot" in f.error.message


def test_meta_is_carried_on_every_row() -> None:
    meta = DispatchMeta("acme/m", PROVIDER, 3.0)
    for exc in (UpstreamError("timeout", "t"), UpstreamError("connection", "c"),
                UpstreamError("status", "s", status=429), UpstreamError("status", "s", status=404)):
        assert from_upstream(exc, PROVIDER, meta).meta is meta


def test_failure_helper_builds_envelope() -> None:
    f = failure(503, errors.UNAVAILABLE, "down", retry_after=2)
    assert (f.error.code, f.error.type, f.error.message, f.retry_after, f.meta) == (
        503, errors.UNAVAILABLE, "down", 2, None)
