"""Webhooks under stress: a slow receiver does not hold up others, a webhooks replica killed
mid-delivery loses nothing, and with no allow-list even localhost is refused."""

from collections.abc import Iterator

import pytest

from libs.contracts.bus import events
from tests.integration.api import call
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.webhooks_support import Receiver, Step, delivery, emit, endpoint, new_tenant, webhook_status

STRICT_HOST = "127.0.0.2"


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def slow_hooks() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def strict_hooks() -> Iterator[Receiver]:
    with Receiver(host=STRICT_HOST) as running:
        yield running


@pytest.fixture(scope="module")
def strict_gateway() -> Iterator[Cluster]:
    """Its own cluster: only 127.0.0.2 allowed (so localhost, 127.0.0.1, is refused), and a short
    ack wait so a killed replica's delivery comes back within seconds."""
    cluster = start_cluster(extra_env={"SWITCHBOARD_WEBHOOK_ALLOW_HOSTS": STRICT_HOST,
                                       "SWITCHBOARD_WEBHOOK_TIMEOUT_S": "1", "SWITCHBOARD_WEBHOOK_ACK_WAIT_S": "2"})
    yield cluster
    cleanup(cluster)


def test_slow_receiver_does_not_delay_another(gateway: Cluster, hooks: Receiver, slow_hooks: Receiver) -> None:
    account, key = new_tenant(gateway)
    slow_hooks.script("/slow", then=Step(hold_s=1.0))  # each answer takes a second
    endpoint(gateway, key, slow_hooks.url("/slow"))
    endpoint(gateway, key, hooks.url("/fast"))
    count = 20  # more than the per-receiver bound (8), so the slow one's deliveries queue up
    for n in range(count):
        emit(gateway, events.USAGE_DAILY_SUMMARY, account, {"n": n})
    hooks.wait("/fast", count)
    assert len(slow_hooks.got("/slow")) < count  # the fast receiver did not wait for the slow one
    slow = slow_hooks.wait("/slow", count, timeout_s=30)
    # Waiting for a slot at the slow receiver is not an attempt: every delivery arrived at its first.
    assert {r.headers["x-aig-attempt"] for r in slow} == {"1"}
    assert len({r.headers["x-aig-delivery-id"] for r in slow}) == count


def test_killed_replica_mid_delivery_loses_nothing(strict_gateway: Cluster, strict_hooks: Receiver) -> None:
    hooks = strict_hooks
    account, key = new_tenant(strict_gateway)
    hooks.script("/held", Step(hold_s=60))  # the first attempt never gets its answer
    emit(strict_gateway, events.JOB_COMPLETED, account, {"job_id": "job_k"}, webhook_url=hooks.url("/held"),
         job_id="job_k")
    (first,) = hooks.wait("/held", 1)
    strict_gateway.webhooks[0].kill()  # SIGKILL mid-delivery: nothing was acknowledged
    strict_gateway.start_webhooks()
    _, second = hooks.wait("/held", 2, timeout_s=20)
    assert second.headers["x-aig-delivery-id"] == first.headers["x-aig-delivery-id"]
    assert second.headers["x-aig-attempt"] == "2"
    record = delivery(strict_gateway, key, first.headers["x-aig-delivery-id"], "delivered")
    assert record["attempts"] == 2


def test_localhost_refused_without_the_allow_list(strict_gateway: Cluster) -> None:
    _, key = new_tenant(strict_gateway)
    for url in ("http://localhost:8080/hook", "http://127.0.0.1:8080/hook", "http://10.0.0.1/",
                "http://169.254.169.254/"):
        response = call(strict_gateway, "POST", "/webhooks/endpoints", key, json={"url": url})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["param"] == "url"
    assert call(strict_gateway, "POST", "/webhooks/endpoints", key,
                json={"url": f"http://{STRICT_HOST}:9/hook"}).status_code == 200


def test_names_are_checked_on_the_address_connected_to(strict_gateway: Cluster, hooks: Receiver) -> None:
    """A job's webhook_url is not registered anywhere: the connector's resolver refuses it at delivery."""
    account, key = new_tenant(strict_gateway)
    emit(strict_gateway, events.JOB_COMPLETED, account, {"job_id": "job_l"},
         webhook_url=f"http://localhost:{hooks.port}/local", job_id="job_l")
    status = eventually(lambda: (s := webhook_status(strict_gateway, account, "job_l")) and s.delivered is not None
                        and s)
    assert status.delivered is False and status.attempts == 1
    assert "non-public" in delivery(strict_gateway, key, status.delivery_id, "failed")["last_error"]
    assert hooks.got("/local") == []
