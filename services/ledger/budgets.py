"""Monthly budgets per tag and their alerts.

A budget is an alert, not a stop: when a tag's month-to-date spend crosses
one of the budget's thresholds (percent of the cap), the ledger emits
`usage.threshold.exceeded` once for that threshold and month. Which
thresholds were announced is kept on the budget record (written with the KV
revision), so a restarted or second ledger does not announce them again.
"""

import hashlib
import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from libs.contracts import subjects
from libs.contracts.accounts import BudgetRecord, decode_budget
from libs.contracts.accounts import encode as encode_record
from libs.contracts.bus import events
from libs.contracts.bus.ledger import AdminRequest
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.http import accounts as http
from libs.contracts.money import MICROS_PER_CENT, cents
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.ledger.admin_ops import Answer, Ops, not_found, ok
from services.ledger.spend import month_of
from services.ledger.stores.base import UsageStore

DEFAULT_THRESHOLDS = [50, 80, 100]


def budget_id(account_id: str, tag: str) -> str:
    return "bud_" + hashlib.sha256(f"{account_id}\x00{tag}".encode()).hexdigest()[:20]


class Budgets:
    def __init__(self, store: UsageStore, events_out: EventPublisher) -> None:
        self.mirror: KvMirror[BudgetRecord] = KvMirror(subjects.KV_BUDGETS, decode_budget)
        self._store = store
        self._events = events_out
        self.ops: Ops = {"budget.create": self._create, "budget.list": self._list, "budget.delete": self._delete}

    async def _spent_by_tag(self, account_id: str) -> dict[str | None, int]:
        _, since = month_of(time.time())
        return await self._store.spend_since(account_id, since, "tag")

    def _view(self, budget: BudgetRecord, spent: dict[str | None, int]) -> http.BudgetView:
        return http.BudgetView(id=budget.id, tag=budget.tag, cap_cents=budget.cap_cents,
                               alert_thresholds=budget.thresholds,
                               spent_cents_this_month=cents(spent.get(budget.tag, 0)), created=budget.created_at)

    async def _create(self, request: AdminRequest) -> Answer:
        body = msgspec.json.decode(request.body, type=http.BudgetCreate)
        account_id = request.principal.account_id
        budget = BudgetRecord(id=budget_id(account_id, body.tag), account_id=account_id, tag=body.tag,
                              cap_cents=body.cap_cents, thresholds=sorted(set(body.alert_thresholds or
                                                                             DEFAULT_THRESHOLDS)),
                              created_at=int(time.time()))
        assert self.mirror.kv is not None
        await self.mirror.kv.put(budget.id, encode_record(budget))  # POST again replaces: one budget a tag
        await self.mirror.wait_for(budget.id)
        await self._check(budget)  # a budget set below the month's spend alerts at once
        return ok(self._view(budget, await self._spent_by_tag(account_id)))

    async def _list(self, request: AdminRequest) -> Answer:
        mine = sorted((b for b in self.mirror.entries.values() if b.account_id == request.principal.account_id),
                      key=lambda b: b.tag)
        spent = await self._spent_by_tag(request.principal.account_id)
        return ok(http.ListOf(data=[self._view(b, spent) for b in mine]))

    async def _delete(self, request: AdminRequest) -> Answer:
        budget = self.mirror.entries.get(request.target_id or "")
        if budget is None or budget.account_id != request.principal.account_id:
            return not_found("budget", request.target_id)
        assert self.mirror.kv is not None
        await self.mirror.kv.delete(budget.id)
        await self.mirror.wait_for(budget.id, present=False)
        return ok(http.Deleted(id=budget.id, object="budget"))

    async def after_batch(self, batch: list[UsageEvent]) -> None:
        touched = {(e.account_id, e.tag) for e in batch if e.tag is not None and e.cost_micros}
        for account_id, tag in touched:
            budget = self.mirror.entries.get(budget_id(account_id, tag))  # type: ignore[arg-type]
            if budget is not None:
                await self._check(budget)

    async def _check(self, budget: BudgetRecord) -> None:
        month, _ = month_of(time.time())
        spent = (await self._spent_by_tag(budget.account_id)).get(budget.tag, 0)
        percent = spent * 100 / (budget.cap_cents * MICROS_PER_CENT)
        already = set(budget.notified) if budget.month == month else set()
        crossed = [t for t in budget.thresholds if percent >= t and t not in already]
        if not crossed:
            return
        assert self.mirror.kv is not None
        try:
            entry = await self.mirror.kv.get(budget.id)
        except KeyNotFoundError:
            return  # deleted meanwhile
        if entry.value is None:
            return
        current = decode_budget(entry.value)
        notified = sorted((set(current.notified) if current.month == month else set()) | set(crossed))
        try:
            await self.mirror.kv.update(budget.id, encode_record(msgspec.structs.replace(
                current, month=month, notified=notified)), last=entry.revision)
        except KeyWrongLastSequenceError:
            return  # another ledger is announcing this crossing
        for threshold in crossed:
            await self._events.emit(
                events.USAGE_THRESHOLD_EXCEEDED, budget.account_id,
                {"budget_id": budget.id, "tag": budget.tag, "threshold_percent": threshold, "month": month,
                 "spent_cents": cents(spent), "cap_cents": budget.cap_cents},
                event_id=f"evt_budget_{budget.id}_{month}_{threshold}")
