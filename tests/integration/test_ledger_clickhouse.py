"""The whole metering path with the ClickHouse store (chDB's in-process engine, since
CI has no ClickHouse server): the production SQL, end to end."""

import concurrent.futures
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, cleanup, eventually, start_cluster
from tests.integration.test_metering import _cost_seen


@pytest.fixture(scope="module")
def clickhouse_gateway() -> Iterator[Cluster]:
    directory = Path(tempfile.mkdtemp(prefix="switchboard-chdb-"))
    cluster = start_cluster(extra_env={"SWITCHBOARD_CLICKHOUSE_URL": f"chdb://{directory}?database=switchboard"})
    yield cluster
    cleanup(cluster)


def test_reports_from_clickhouse_equal_what_clients_saw(clickhouse_gateway: Cluster) -> None:
    gw = clickhouse_gateway
    assert "ClickHouseUsageStore" in (gw.log_dir / "ledger-0.log").read_text()
    sub = create_sub_account(gw, name="ch")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        seen = list(pool.map(lambda i: _cost_seen(gw, sub["key"], i), range(60)))
    expected = sum(cost for _, cost in seen)

    def complete() -> dict | None:
        report = call(gw, "GET", f"/sub-accounts/{sub['id']}/usage", params={"bucket": "day"}).json()
        return report if report["total"]["requests"] == 60 else None

    report = eventually(complete, 20)
    assert report["total"]["cost_micros"] == expected and report["total"]["errors"] == 15
    by_tag = call(gw, "GET", "/usage/by-tag", sub["key"]).json()
    assert sum(row["cost_micros"] for row in by_tag["data"]) == expected


def test_generation_and_spend_cap_on_clickhouse(clickhouse_gateway: Cluster) -> None:
    gw = clickhouse_gateway
    sub = create_sub_account(gw, name="ch-capped", spend_cap_cents=5)
    client = gw.client(key=sub["key"])
    # max_tokens bounds the worst case the cap must cover (an unbounded answer reserves 4,096 tokens).
    raw = client.chat.completions.with_raw_response.create(model="sim/pricey", max_tokens=2,
                                                           messages=[{"role": "user", "content": "hi"}])
    assert generation(gw, raw.headers["X-Request-Id"], key=sub["key"])["cost"]["total_micros"] > 0

    def blocked() -> bool:
        try:
            client.chat.completions.create(model="sim/pricey", max_tokens=2,
                                           messages=[{"role": "user", "content": "hi"}])
        except Exception as exc:
            return getattr(exc, "status_code", None) == 402
        return False

    assert eventually(blocked, 10)
