import nats.errors
import nats.js.errors
import pytest

from libs.runtime.bus_failures import failure_of


@pytest.mark.parametrize("exc", [nats.errors.TimeoutError(), nats.errors.NoRespondersError(),
                                 nats.js.errors.ServiceUnavailableError(), nats.errors.ConnectionClosedError()])
def test_the_bus_being_away_is_a_503_with_retry_after(exc: Exception) -> None:
    failure = failure_of(exc, "ledger")
    assert failure.error.code == 503 and failure.error.type == "service_unavailable_error"
    assert failure.retry_after == 1 and "ledger" in failure.error.message


def test_a_fault_of_the_service_itself_is_a_500() -> None:
    failure = failure_of(KeyError("x"), "jobs service")
    assert failure.error.code == 500 and failure.retry_after is None
