"""`usage.daily.summary`: one event per account for each UTC day that had traffic.

Every `interval_s` the ledger looks at yesterday: for each account with usage
that has no summary yet, it emits the summary (event id derived from account
and day, so a race between ledger replicas stores one event) and then marks
the day done in the KV bucket `sb_ledger_state`. Usage arriving after that
mark (more than a summary interval late) is in the reports but not in the
summary.
"""

import asyncio
import calendar
import time
from collections.abc import Callable

import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.bus import events
from libs.contracts.bus.usage import ReportQuery
from libs.contracts.money import cents
from libs.runtime.background import BackgroundTask
from libs.runtime.events import EventPublisher
from services.ledger.stores.base import UsageStore

log = structlog.get_logger()
_DAY_MS = 86_400_000


def yesterday(now_s: float) -> tuple[str, int, int]:
    """(YYYY-MM-DD, start ms, end ms) of the UTC day before `now_s`."""
    t = time.gmtime(now_s)
    today_start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) * 1000
    start = today_start - _DAY_MS
    return time.strftime("%Y-%m-%d", time.gmtime(start / 1000)), start, today_start


class DailySummary:
    def __init__(self, store: UsageStore, state: KeyValue, accounts: Callable[[], set[str]],
                 events_out: EventPublisher, interval_s: float = 60.0) -> None:
        self._store = store
        self._state = state
        self._accounts = accounts
        self._events = events_out
        self._interval_s = interval_s
        self._task = BackgroundTask("daily-summaries")

    def start(self) -> None:
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once(time.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round retries
                log.warning("daily_summary_failed", error=repr(exc))

    async def run_once(self, now_s: float) -> int:
        day, start, end = yesterday(now_s)
        emitted = 0
        for account_id in sorted(self._accounts()):
            marker = f"daily_{account_id}_{day.replace('-', '')}"
            try:
                await self._state.get(marker)
                continue  # already summarized
            except KeyNotFoundError:
                pass
            rows = await self._store.report(ReportQuery(account_id=account_id, from_ms=start, to_ms=end,
                                                        group_by="tag"))
            requests = sum(r.requests for r in rows)
            if not requests:
                continue
            spent = sum(r.cost_micros for r in rows)
            top = sorted(rows, key=lambda r: r.cost_micros, reverse=True)[:5]
            await self._events.emit(events.USAGE_DAILY_SUMMARY, account_id, {
                "date": day, "requests": requests, "errors": sum(r.errors for r in rows),
                "input_units": sum(r.input_units for r in rows), "output_units": sum(r.output_units for r in rows),
                "cost_cents": cents(spent),
                "top_tags": [{"tag": r.group, "cost_cents": cents(r.cost_micros), "requests": r.requests}
                             for r in top],
            }, event_id=f"evt_{marker}")
            try:
                await self._state.create(marker, b"1")
            except KeyWrongLastSequenceError:
                pass  # another ledger marked it; the event id made the emissions one
            emitted += 1
        return emitted
