"""Spend caps that hold under concurrency: each edge spends leased slices of a budget locally.

A request under a capped sub-account (or an account with a prepaid wallet) reserves its
worst-case cost from this edge's lease on that budget before it is sent, and settles to
its real cost (the reply's meta.cost) when it ends. Admission is arithmetic on local
state; the ledger is asked for more (LEDGER_LEASE, services/ledger/leases.py) in the
background once a lease runs below half a slice, and renewed every third of its TTL
while in use. A request the lease cannot cover waits for a refill for up to `wait_s`,
then is refused: 402 when the ledger says the budget cannot cover it, 503 when the ledger
could not be asked. Since the ledger keeps the sum of live leases within what remains,
no request is admitted once the cap is reached; what a cap can be overshot by is the
estimate error of the requests in flight (a real cost above its reservation).

- A request whose real cost the edge never sees (a timeout, a client that left a
  stream) is settled at its reservation, an upper bound.
- A lease unused for `idle_s` with nothing in flight goes back to the ledger.
- After `ttl` from sending its last renewal the edge admits nothing more under a lease
  (the ledger lets it go a grace later and charges it in full, so a dead edge's slice
  comes back once the budget is quiet).
"""

import asyncio
import secrets
import time
from typing import NamedTuple

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import DispatchMeta
from libs.contracts.bus.ledger import LeaseGrant, LeaseRequest
from libs.runtime.background import BackgroundTask
from services.edge.errors import GatewayError

log = structlog.get_logger()
_ASK_TIMEOUT_S = 1.0
_UNLIMITED_RECHECK_S = 2.0  # a budget the ledger called unlimited is asked again after this long
_TARGET_S = 1.0  # a slice is sized to last about this long at the recent rate
_MIN_SLICE_RESERVATIONS = 4
_TICK_S = 0.25
_RETRY_HELD_S = 0.02


class Owner(NamedTuple):
    scope: str  # ledger_bus.LEASE_SUB | LEASE_WALLET
    owner_id: str
    account_id: str


class _Lease:
    """One lease as this edge holds it; a replaced lease lives on until its requests settle."""

    __slots__ = ("granted", "held", "lease_id", "spent", "unsure", "valid_until")

    def __init__(self) -> None:
        self.lease_id: str | None = None
        self.granted = 0  # cumulative grant
        self.spent = 0  # real cost settled
        self.held = 0  # reserved by requests in flight
        self.unsure = 0  # the part of `spent` charged at the reservation: the real cost was never seen
        self.valid_until = 0.0  # monotonic

    def free(self, now: float) -> int:
        return self.granted - self.spent - self.held if now < self.valid_until else 0


class _Budget:
    __slots__ = ("last_amount", "lease", "need", "owner", "prev_rate_sum", "rate_sum", "rate_window", "refill",
                 "refusal", "renewed_at", "unlimited_until", "unreachable", "used_at")

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.lease = _Lease()
        self.refill: asyncio.Task[None] | None = None  # the ask in progress
        self.need = 0  # the largest reservation waiting for the ask in progress
        self.refusal: str | None = None  # the ledger's 402 message from the last ask
        self.unreachable = False
        self.unlimited_until = 0.0
        self.renewed_at = 0.0
        self.used_at = 0.0
        self.last_amount = 0
        self.rate_window = 0  # whole seconds (monotonic) the sum below belongs to
        self.rate_sum = 0
        self.prev_rate_sum = 0

    def note(self, amount: int, now: float) -> None:
        self.used_at = now
        self.last_amount = amount
        window = int(now)
        if window != self.rate_window:
            self.prev_rate_sum = self.rate_sum if window == self.rate_window + 1 else 0
            self.rate_window, self.rate_sum = window, 0
        self.rate_sum += amount

    def slice(self, need: int) -> int:
        per_second = max(self.rate_sum, self.prev_rate_sum)
        return max(2 * need, _MIN_SLICE_RESERVATIONS * self.last_amount, int(per_second * _TARGET_S))


class Hold:
    """What one request reserved; settle() exactly once with what it really cost."""

    __slots__ = ("_amount", "_leases", "settled")

    def __init__(self, leases: list[_Lease], amount: int) -> None:
        self._leases = leases
        self._amount = amount
        self.settled = not leases

    def settle(self, cost_micros: int | None) -> None:
        """`cost_micros` None: the cost is unknown, charge the reservation."""
        if self.settled:
            return
        self.settled = True
        cost = self._amount if cost_micros is None else max(cost_micros, 0)
        for lease in self._leases:
            lease.held -= self._amount
            lease.spent += cost
            if cost_micros is None:
                lease.unsure += cost

    def settle_meta(self, meta: DispatchMeta | None) -> None:
        self.settle(meta.cost.total_micros if meta is not None and meta.cost is not None else 0)

    def settle_error(self, exc: BaseException) -> None:
        """A request that ended in an error: the router's figure when it sent one, else the
        reservation if the router may still be working on it, else nothing."""
        if isinstance(exc, GatewayError):
            header = exc.headers.get("X-Cost-Cents")
            if header is not None:
                self.settle(round(float(header) * 10_000))
            elif exc.status == 504:
                self.settle(None)
            else:
                self.settle(0)
        else:
            self.settle(None)


class SpendLeases:
    def __init__(self, nc: Client, edge_id: str, wait_s: float = 2.0, idle_s: float = 3.0) -> None:
        self._nc = nc
        self._edge_id = edge_id
        self._wait_s = wait_s
        self._idle_s = idle_s
        self._budgets: dict[Owner, _Budget] = {}
        self._task = BackgroundTask("spend-lease-renewal")

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        """Hand every lease back, so the budget is usable by the other edges at once."""
        await self._task.stop()
        for budget in list(self._budgets.values()):
            if budget.lease.lease_id is not None:
                await self._release(budget)

    async def reserve(self, owners: list[Owner], amount: int) -> Hold:
        """Reserve `amount` micro-dollars on every budget in `owners`, or raise 402/503."""
        amount = max(amount, 1)  # even a free request needs a budget that is not spent
        taken: list[_Lease] = []
        try:
            for owner in owners:
                lease = await self._take(owner, amount)
                if lease is not None:
                    taken.append(lease)
        except BaseException:
            for lease in taken:
                lease.held -= amount
            raise
        return Hold(taken, amount)

    def _budget(self, owner: Owner) -> _Budget:
        budget = self._budgets.get(owner)
        if budget is None:
            budget = self._budgets[owner] = _Budget(owner)
        return budget

    async def _take(self, owner: Owner, amount: int) -> _Lease | None:
        budget = self._budget(owner)
        now = time.monotonic()
        if now < budget.unlimited_until:
            return None
        budget.note(amount, now)
        deadline = now + self._wait_s
        while True:
            lease = budget.lease
            if lease.free(now) >= amount:
                lease.held += amount
                if lease.free(now) < budget.slice(amount) // 2:
                    self._ask(budget, 0)  # top up before the next request has to wait
                return lease
            done = self._ask(budget, amount)
            try:
                await asyncio.wait_for(asyncio.shield(done), max(deadline - now, 0.001))
            except TimeoutError:
                pass
            now = time.monotonic()
            if now < budget.unlimited_until:
                return None
            if budget.lease.free(now) >= amount:
                continue
            if budget.refusal is not None:
                raise GatewayError(402, errors.BUDGET_EXCEEDED, budget.refusal, refusal="spend_cap")
            if now >= deadline:
                if budget.unreachable:
                    raise GatewayError(503, errors.UNAVAILABLE,
                                       "The spend cap could not be confirmed with the ledger; retry shortly.",
                                       retry_after=1)
                raise GatewayError(402, errors.BUDGET_EXCEEDED,
                                   "What remains of the budget is reserved by requests in flight; retry "
                                   "shortly, lower max_tokens, or raise the cap.", retry_after=1,
                                   refusal="reserved_in_flight")

    def _ask(self, budget: _Budget, need: int) -> asyncio.Task[None]:
        """Start an ask (or join the one in progress), wanting at least `need` more."""
        budget.need = max(budget.need, need)
        if budget.refill is None:
            budget.refill = asyncio.create_task(self._refill(budget))
        return budget.refill

    async def _refill(self, budget: _Budget) -> None:
        try:
            need, budget.need = budget.need, 0
            lease = budget.lease
            shrunk = -1
            if need > 0 and lease.lease_id is not None:
                # A remnant too small for the waiting request goes back, so that together with what other
                # edges give back it can cover someone's request instead of idling in every lease.
                lease.granted = shrunk = lease.spent + lease.held
            grant = await self._send(budget, lease, LeaseRequest(
                scope=budget.owner.scope, owner_id=budget.owner.owner_id, account_id=budget.owner.account_id,
                edge_id=self._edge_id, lease_id=lease.lease_id, want_micros=budget.slice(need),
                need_micros=need, spent_micros=lease.spent, held_micros=lease.held, unsure_micros=lease.unsure,
                granted_micros=shrunk))
            if need > 0 and grant is not None and grant.refusal is None and budget.lease.free(time.monotonic()) < need:
                # Held by other edges' leases for now: do not ask again at once.
                await asyncio.sleep(_RETRY_HELD_S)
        except Exception:
            log.exception("spend_lease_refill_failed", owner=budget.owner.owner_id)
        finally:
            budget.refill = None

    async def _send(self, budget: _Budget, lease: _Lease, request: LeaseRequest) -> LeaseGrant | None:
        sent = time.monotonic()
        try:
            msg = await self._nc.request(subjects.LEDGER_LEASE, ledger_bus.encode(request), timeout=_ASK_TIMEOUT_S)
            grant = ledger_bus.decode_lease_grant(msg.data)
        except (nats.errors.Error, msgspec.DecodeError) as exc:
            budget.unreachable = True
            budget.refusal = None
            log.warning("spend_lease_unreachable", owner=budget.owner.owner_id, error=repr(exc))
            return None
        budget.unreachable = grant.error is not None
        if grant.error is not None:
            log.warning("spend_lease_error", owner=budget.owner.owner_id, error=grant.error)
            return None
        budget.refusal = grant.refusal
        if request.release:
            return grant
        if grant.unlimited:
            budget.unlimited_until = sent + _UNLIMITED_RECHECK_S
            budget.lease = _Lease()
            return grant
        if grant.lease_id is None:
            if lease.lease_id is not None and budget.lease is lease:
                budget.lease = _Lease()  # let go by the ledger: its requests settle into the old object
            return grant
        if lease.lease_id != grant.lease_id:
            if budget.lease is not lease:
                return grant  # replaced meanwhile; the ledger will expire this one
            lease = budget.lease = _Lease()
            lease.lease_id = grant.lease_id
        lease.granted = grant.granted_micros
        lease.valid_until = sent + grant.ttl_s
        budget.renewed_at = sent
        return grant

    async def _release(self, budget: _Budget) -> None:
        lease, budget.lease = budget.lease, _Lease()
        await self._send(budget, lease, LeaseRequest(
            scope=budget.owner.scope, owner_id=budget.owner.owner_id, account_id=budget.owner.account_id,
            edge_id=self._edge_id, lease_id=lease.lease_id, spent_micros=lease.spent, held_micros=lease.held,
            unsure_micros=lease.unsure, release=True))

    async def _run(self) -> None:
        """Renew leases in use, return idle ones, forget budgets nobody used for a while."""
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic()
            for owner, budget in list(self._budgets.items()):
                try:
                    await self._tend(owner, budget, now)
                except Exception:
                    log.exception("spend_lease_tend_failed", owner=owner.owner_id)

    async def _tend(self, owner: Owner, budget: _Budget, now: float) -> None:
        lease = budget.lease
        if lease.lease_id is None:
            if now - budget.used_at > 10 * self._idle_s and budget.refill is None:
                del self._budgets[owner]
            return
        if lease.held == 0 and now - budget.used_at > self._idle_s and budget.refill is None:
            await self._release(budget)
        elif budget.refill is None and now - budget.renewed_at > (lease.valid_until - budget.renewed_at) / 3:
            self._ask(budget, 0)


def new_edge_id() -> str:
    return f"edge_{secrets.token_hex(6)}"
