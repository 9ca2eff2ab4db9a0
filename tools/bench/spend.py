"""Spend-status refresh at a month's volume: the store queries the ledger runs after each
batch (every ingest.HOOK_INTERVAL_S) for each account the batch touched.

Fills a store with N usage events of one account spread over one whole calendar month
(the previous one, so "month to date" is a full month), then times each refresh two ways:
before, the SUM over the month's usage rows (spend_from_events, the query the ledger ran
until the aggregate existed), and after, the running daily aggregate (spend_since). Three
refreshes: a spend cap (by sub-account, since the month's start), a budget (by tag, same),
and a wallet (since a top-up in the middle of the month, so part of a day comes from the
usage rows). Both ways must give the same totals, or the bench fails.

`python -m tools.bench.spend` runs it alone. Knobs: BENCH_SPEND_ROWS (default 1000000),
BENCH_SPEND_RUNS (timed runs per figure, default 20; the median is reported).
"""

import asyncio
import calendar
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from libs.contracts.bus.usage import UsageEvent
from services.ledger.stores import ClickHouseUsageStore, SqliteUsageStore, UsageStore
from services.ledger.stores.base import SpendBy

ACCOUNT = "bench_spend"
_BATCH = 20_000
_FAR_FUTURE = 2**62


def previous_month(now_s: float) -> tuple[int, int]:
    """[start, end) in unix ms of the calendar month (UTC) before the one holding `now_s`."""
    t = time.gmtime(now_s)
    year, month = (t.tm_year, t.tm_mon - 1) if t.tm_mon > 1 else (t.tm_year - 1, 12)
    start = calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
    return start, calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000


def _events(first: int, count: int, total: int, start_ms: int, end_ms: int) -> list[UsageEvent]:
    step = (end_ms - start_ms) / total
    return [UsageEvent(request_id=f"spend-{i}", ts_ms=start_ms + int(i * step), account_id=ACCOUNT,
                       key_id="key_bench", subaccount_id=f"sa_{i % 20}", tag=f"t{i % 7}", operation="chat",
                       requested_model="sim/gpt-sim", model="sim/gpt-sim", provider="sim", status=200,
                       input_units=12, output_units=30, cost_micros=60 + i % 31, upstream_latency_ms=10.0,
                       total_latency_ms=11.0)
            for i in range(first, first + count)]


async def _median_ms(run: Callable[[], Awaitable[object]], runs: int) -> float:
    await run()  # warm: page cache, parsed statements
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


async def _measure_store(store: UsageStore, rows: int, runs: int) -> dict[str, object]:
    start_ms, end_ms = previous_month(time.time())
    await store.open()
    try:
        started = time.perf_counter()
        for first in range(0, rows, _BATCH):
            await store.insert(_events(first, min(_BATCH, rows - first), rows, start_ms, end_ms))
        fill_s = time.perf_counter() - started
        wallet_since = start_ms + (end_ms - start_ms) // 2 + 13 * 3_600_000 + 37_000  # mid-month, mid-day
        refreshes: dict[str, tuple[int, SpendBy]] = {
            "spend cap (by sub-account)": (start_ms, "subaccount"), "budget (by tag)": (start_ms, "tag"),
            "wallet (since a mid-month top-up)": (wallet_since, "subaccount")}
        figures: dict[str, dict[str, float]] = {}
        for label, (since, by) in refreshes.items():
            before = await store.spend_from_events(ACCOUNT, since, _FAR_FUTURE, by)
            after = await store.spend_since(ACCOUNT, since, by)
            if before != after or not after:
                raise SystemExit(f"spend bench: aggregate and usage rows disagree for {label}: {after} != {before}")
            figures[label] = {
                "before_ms": await _median_ms(lambda s=since, b=by: store.spend_from_events(  # type: ignore[misc]
                    ACCOUNT, s, _FAR_FUTURE, b), runs),
                "after_ms": await _median_ms(lambda s=since, b=by: store.spend_since(ACCOUNT, s, b), runs)}
        return {"rows": rows, "fill_seconds": round(fill_s, 1), "fill_rows_per_s": round(rows / fill_s),
                "refresh": figures}
    finally:
        await store.close()


def measure(root: Path, rows: int | None = None, runs: int | None = None) -> dict[str, dict[str, object]]:
    """Both dialects; ClickHouse runs on chDB in this process (one engine directory per process)."""
    rows = rows if rows is not None else int(os.environ.get("BENCH_SPEND_ROWS", "1000000"))
    runs = runs if runs is not None else int(os.environ.get("BENCH_SPEND_RUNS", "20"))
    root.mkdir(parents=True, exist_ok=True)
    stores: dict[str, UsageStore] = {"sqlite": SqliteUsageStore(root / "usage.sqlite3"),
                                     "clickhouse": ClickHouseUsageStore.with_chdb(root / "chdb", "bench_spend")}
    return {kind: asyncio.run(_measure_store(store, rows, runs)) for kind, store in stores.items()}


def lines(figures: dict[str, dict[str, object]]) -> list[str]:
    out = []
    for kind, result in figures.items():
        out.append(f"  {kind:<10} {result['rows']} rows in one month (filled at {result['fill_rows_per_s']} rows/s)")
        refresh: dict[str, dict[str, float]] = result["refresh"]  # type: ignore[assignment]
        for label, f in refresh.items():
            out.append(f"    {label:<36} SUM over rows {f['before_ms']:>9.2f} ms   aggregate {f['after_ms']:>8.2f} ms")
    return out


if __name__ == "__main__":
    print("spend-status refresh (median per refresh, one account):")
    print("\n".join(lines(measure(Path(tempfile.mkdtemp(prefix="switchboard-bench-spend-"))))))
