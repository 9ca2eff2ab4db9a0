"""Month-to-date spend per sub-account, published for the edges to enforce caps.

After each stored batch the ledger reads, from the store's running daily
aggregate (so the cost is the month's days, not its requests), the month's spend
of the sub-accounts the batch touched and publishes it to the KV bucket
`sb_spend`; every edge mirrors that bucket and answers 402 once a sub-account
is at its cap. `subaccount.spend.exceeded` is emitted once per crossing (a new
cap starts a new crossing); its event id is derived from the sub-account,
month and cap, so two ledger replicas racing on the same crossing store one event.
"""

import calendar
import time

from libs.contracts.accounts import SpendStatus, SubAccountRecord
from libs.contracts.accounts import encode as encode_account
from libs.contracts.bus import events
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.money import MICROS_PER_CENT, cents
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.ledger.stores.base import UsageStore


def month_of(ts_s: float) -> tuple[str, int]:
    """('YYYY-MM', start of that month in unix ms), UTC."""
    t = time.gmtime(ts_s)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}", calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 1000


class SpendTracker:
    def __init__(self, store: UsageStore, spend: KvMirror[SpendStatus], subaccounts: KvMirror[SubAccountRecord],
                 events_out: EventPublisher) -> None:
        self._store = store
        self._spend = spend
        self._subs = subaccounts
        self._events = events_out

    def spent_cents(self, subaccount_id: str) -> float:
        status = self._spend.entries.get(subaccount_id)
        month, _ = month_of(time.time())
        return cents(status.spent_micros) if status is not None and status.month == month else 0.0

    async def after_batch(self, batch: list[UsageEvent]) -> None:
        touched: dict[str, set[str]] = {}
        for event in batch:
            if event.subaccount_id is not None and event.cost_micros:
                touched.setdefault(event.account_id, set()).add(event.subaccount_id)
        month, since = month_of(time.time())
        for account_id, subaccount_ids in touched.items():
            totals = await self._store.spend_since(account_id, since, "subaccount")
            for subaccount_id in subaccount_ids:
                sub = self._subs.entries.get(subaccount_id)
                if sub is not None:
                    await self._publish(sub, month, totals.get(subaccount_id, 0))

    async def refresh(self, sub: SubAccountRecord) -> None:
        """Recompute one sub-account now (created, or its cap changed)."""
        month, since = month_of(time.time())
        totals = await self._store.spend_since(sub.account_id, since, "subaccount")
        await self._publish(sub, month, totals.get(sub.id, 0))

    async def _publish(self, sub: SubAccountRecord, month: str, spent: int) -> None:
        cap = sub.spend_cap_cents * MICROS_PER_CENT
        # A cap of 0 means "no cap" (the contract makes the field mandatory).
        exceeded = cap > 0 and spent >= cap
        status = SpendStatus(subaccount_id=sub.id, month=month, spent_micros=spent, cap_micros=cap,
                             exceeded=exceeded)
        previous = self._spend.entries.get(sub.id)
        if previous == status:
            return
        assert self._spend.kv is not None
        await self._spend.kv.put(sub.id, encode_account(status))
        was_exceeded = previous is not None and previous.exceeded and previous.month == month \
            and previous.cap_micros == cap
        if exceeded and not was_exceeded:
            await self._events.emit(
                events.SUBACCOUNT_SPEND_EXCEEDED, sub.account_id,
                {"sub_account_id": sub.id, "month": month, "spent_cents": cents(spent),
                 "spend_cap_cents": sub.spend_cap_cents},
                event_id=f"evt_spend_{sub.id}_{month}_{cap}")
