"""Spend leases: edges spend slices of a cap (or a prepaid balance) locally, the ledger
keeps the sum of live slices within what remains.

A request's worst-case cost is reserved at the edge against a lease it already holds, so
admission costs no network round trip; the edge settles each reservation to the request's
real cost and asks for more (LEDGER_LEASE) in the background as a lease runs low. Here,
per budget (a sub-account's monthly cap, an account's wallet), a LeaseBook in KV
`sb_spend_leases` records the live leases and what has been spent under them:

    settled   = max(the ledger's own spend figure, base + charged + provisional)
    remaining = limit - settled - sum over live leases of (granted - spent)

`base` is the ledger's figure when the book opened and `charged` is the real cost edges
reported settled under leases since: reports arrive before the usage events reach the
store, so a crossing is seen at once instead of a batch and a hook later. Spend that does
not go through leases (async jobs check the cap on their own) counts through the first term.

`provisional` holds amounts that may or may not have been spent, each until the usage
stream has drained `settle` seconds past it (by then the store has whatever was spent):
- a lease that expired (`ttl + grace` after its last renewal: its edge died or lost the
  ledger) is provisionally charged what it had left, since its edge may have spent it all;
  the edge itself admits nothing under a lease `ttl` after sending the last renewal;
- a request whose cost its edge never saw (a timeout, a client that left a stream), and
  requests still in flight under a returned lease, at their reservation.
Once dropped, such spend counts through the store's figure. That figure can trail the
reports by a batch and a hook, so right after an edge died the budget may be undercounted
by at most the smaller of what that edge spent unreported and what the store trails by.

- The book is written with the KV revision, so ledger replicas share it and a restarted
  ledger finds every live lease where it left it. A budget with no live lease for `settle`
  seconds (and the stream drained since) reopens its book from the ledger's figure.
- A budget that cannot cover a waiting request's reservation any more is at its limit:
  `subaccount.spend.exceeded` (or `balance.exhausted`) is announced once for that limit.
"""

import secrets
import time
from collections.abc import Callable

import msgspec
import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from libs.contracts.accounts import SpendStatus, SubAccountRecord, WalletRecord
from libs.contracts.bus import events
from libs.contracts.bus.ledger import LEASE_SUB, LEASE_WALLET, LeaseGrant, LeaseRequest, decode_lease_request
from libs.contracts.ids import valid_id
from libs.contracts.money import MICROS_PER_CENT, cents
from libs.runtime.env import env_float
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.ledger.spend import month_of

log = structlog.get_logger()
_RETRIES = 8
_GRACE_S = 1.0  # covers the time a renewal spends on the wire: the edge stops first
BOOK_TTL_S = 86_400.0  # a book nobody touched for a day is quiet: reopened from the store


class _Lease(msgspec.Struct, array_like=True):
    edge_id: str
    granted: int  # cumulative
    spent: int  # what the edge reported settled (cumulative)
    held: int  # reserved by requests in flight, as last reported
    expires_ms: int
    unsure: int = 0  # the part of `spent` that is reservations of requests whose cost the edge never saw


class _Provisional(msgspec.Struct, array_like=True):
    micros: int
    until_ms: int  # counted until the usage stream has drained past this


class LeaseBook(msgspec.Struct, kw_only=True):
    period: str  # the month of a cap's book ('' for a wallet, whose spend is not monthly)
    base_micros: int
    charged_micros: int = 0
    provisional: list[_Provisional] = []
    leases: dict[str, _Lease] = {}
    quiet_since_ms: int = 0
    announced_limit: int = -1  # the limit whose exhaustion was announced


_encode = msgspec.msgpack.Encoder().encode
_decode_book = msgspec.msgpack.Decoder(LeaseBook).decode


class _Figures(msgspec.Struct):
    limit: int
    spent: int  # the ledger's own figure (store-derived, trails by a batch and a hook)
    period: str


class SpendLeases:
    def __init__(self, kv: KeyValue, subaccounts: KvMirror[SubAccountRecord], spend: KvMirror[SpendStatus],
                 wallets: KvMirror[WalletRecord], events_out: EventPublisher,
                 caught_up_at: Callable[[], float]) -> None:
        self._kv = kv
        self._subs = subaccounts
        self._spend = spend
        self._wallets = wallets
        self._events = events_out
        self._caught_up_at = caught_up_at  # when usage ingestion last had nothing waiting (unix s)
        self.ttl_s = env_float("SWITCHBOARD_SPEND_LEASE_TTL_S", 10.0)
        self.settle_s = env_float("SWITCHBOARD_SPEND_LEASE_SETTLE_S", 2.0)

    async def answer(self, data: bytes) -> bytes:
        try:
            request = decode_lease_request(data)
        except msgspec.DecodeError:
            return _encode(LeaseGrant(None, error="undecodable lease request"))
        if request.scope not in (LEASE_SUB, LEASE_WALLET) or not all(
                valid_id(v) for v in (request.owner_id, request.account_id, request.edge_id,
                                      request.lease_id or "x")):
            return _encode(LeaseGrant(None, error="malformed lease request"))
        figures = self._figures(request)
        if figures is None:
            return _encode(LeaseGrant(None, unlimited=True))
        return _encode(await self._grant(request, figures))

    def _figures(self, request: LeaseRequest) -> _Figures | None:
        """The budget's limit and the ledger's spend against it; None: nothing to enforce."""
        if request.scope == LEASE_WALLET:
            wallet = self._wallets.entries.get(request.owner_id)
            if wallet is None:
                return None
            return _Figures(wallet.credited_micros, wallet.credited_micros - wallet.balance_micros, "")
        sub = self._subs.entries.get(request.owner_id)
        if sub is None or sub.account_id != request.account_id or sub.spend_cap_cents <= 0:
            return None
        month, _ = month_of(time.time())
        status = self._spend.entries.get(sub.id)
        spent = status.spent_micros if status is not None and status.month == month else 0
        return _Figures(sub.spend_cap_cents * MICROS_PER_CENT, spent, month)

    async def _grant(self, request: LeaseRequest, figures: _Figures) -> LeaseGrant:
        key = f"{request.scope}.{request.owner_id}"
        for _ in range(_RETRIES):
            try:
                entry = await self._kv.get(key)
                revision, stored = entry.revision, _decode_book(entry.value) if entry.value else None
            except KeyNotFoundError:
                revision, stored = None, None
            now_ms = int(time.time() * 1000)
            book = self._current(stored, figures, now_ms)
            grant, announce = self._apply(book, request, figures, now_ms)
            try:
                if revision is None:
                    await self._kv.create(key, _encode(book))
                else:
                    await self._kv.update(key, _encode(book), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another edge's request (or another ledger) got there first: redo on its book
            if announce:
                await self._announce(request, figures)
            return grant
        return LeaseGrant(None)  # contended: the edge asks again

    def _current(self, book: LeaseBook | None, figures: _Figures, now_ms: int) -> LeaseBook:
        """The stored book, or a fresh one from the ledger's figure: first use, a new month, or a quiet
        budget whose every request has reached the store."""
        if book is None or book.period != figures.period:
            return LeaseBook(period=figures.period, base_micros=figures.spent)
        drained_ms = self._caught_up_at() * 1000
        book.provisional = [p for p in book.provisional if p.until_ms > min(now_ms, drained_ms)]
        for lease_id, lease in list(book.leases.items()):
            if lease.expires_ms <= now_ms:  # its edge may have spent all it had left
                self._provisional(book, max(lease.granted - lease.spent, 0), now_ms)
                del book.leases[lease_id]
                book.quiet_since_ms = now_ms
        quiet_ms = self.settle_s * 1000
        if not book.leases and not book.provisional and now_ms - book.quiet_since_ms >= quiet_ms \
                and drained_ms >= book.quiet_since_ms + quiet_ms:
            return LeaseBook(period=figures.period, base_micros=figures.spent, announced_limit=book.announced_limit)
        return book

    def _provisional(self, book: LeaseBook, micros: int, now_ms: int) -> None:
        if micros > 0:
            book.provisional.append(_Provisional(micros, now_ms + int(self.settle_s * 1000)))

    def _apply(self, book: LeaseBook, request: LeaseRequest, figures: _Figures,
               now_ms: int) -> tuple[LeaseGrant, bool]:
        lease = book.leases.get(request.lease_id or "")
        if lease is not None:
            spent = max(request.spent_micros - lease.spent, 0)
            unsure = min(max(request.unsure_micros - lease.unsure, 0), spent)
            book.charged_micros += spent - unsure
            self._provisional(book, unsure, now_ms)
            lease.spent = max(lease.spent, request.spent_micros)
            lease.unsure = max(lease.unsure, request.unsure_micros)
            lease.held = max(request.held_micros, 0)
            if request.granted_micros >= 0:
                lease.granted = min(lease.granted, request.granted_micros)
        if request.release:
            if lease is not None:
                self._provisional(book, lease.held, now_ms)  # its requests in flight, at their reservation
                del book.leases[request.lease_id or ""]
                if not book.leases:
                    book.quiet_since_ms = now_ms
            return LeaseGrant(None), False
        known = max(figures.spent, book.base_micros + book.charged_micros)
        settled = max(figures.spent, book.base_micros + book.charged_micros
                      + sum(p.micros for p in book.provisional))
        outstanding = sum(max(x.granted - x.spent, 0) for x in book.leases.values())
        room = max(figures.limit - settled - outstanding, 0)
        need = max(request.need_micros, 0)
        # At most half of what is left unless a waiting request needs more, so a second edge finds some.
        grant = min(max(request.want_micros, 0), room, max(need, room // 2))
        if grant < need:
            grant = 0
        lease_id = request.lease_id if lease is not None else None
        expires_ms = now_ms + int((self.ttl_s + _GRACE_S) * 1000)
        if lease is not None:
            lease.granted += grant
            lease.expires_ms = expires_ms
        elif grant > 0:
            lease_id = f"ls_{secrets.token_hex(8)}"
            lease = book.leases[lease_id] = _Lease(request.edge_id, grant, 0, 0, expires_ms)
        refusal = None
        announce = False
        if need > 0 and grant == 0 and figures.limit - settled < need:
            refusal = self._refusal(request, figures, settled)
            # Announced when what is surely spent leaves too little, not while amounts are provisional.
            if figures.limit - known < need:
                announce = book.announced_limit != figures.limit
                book.announced_limit = figures.limit
        return LeaseGrant(lease_id, granted_micros=lease.granted if lease is not None else 0,
                          ttl_s=self.ttl_s if lease is not None else 0.0, remaining_micros=room - grant,
                          refusal=refusal), announce

    @staticmethod
    def _refusal(request: LeaseRequest, figures: _Figures, settled: int) -> str:
        left = max(figures.limit - settled, 0)
        need = f"this request may cost up to ${cents(request.need_micros) / 100:.4f}"
        if request.scope == LEASE_WALLET:
            return (f"The account's prepaid balance is exhausted (${cents(left) / 100:.4f} left; {need}). "
                    "Top it up with POST /v1/balance/top-up, or lower max_tokens.")
        return (f"Sub-account {request.owner_id} reached its monthly spend cap of "
                f"${cents(figures.limit) / 100:.2f} (spent ${cents(settled) / 100:.4f}; {need}). "
                f"Raise spend_cap_cents with PATCH /v1/sub-accounts/{request.owner_id}, lower max_tokens, "
                "or wait for the month rollover.")

    async def _announce(self, request: LeaseRequest, figures: _Figures) -> None:
        if request.scope == LEASE_WALLET:
            wallet = self._wallets.entries.get(request.owner_id)
            low = wallet.low_micros // MICROS_PER_CENT if wallet is not None else 0
            await self._events.emit(
                events.BALANCE_EXHAUSTED, request.account_id,
                {"balance_cents": (figures.limit - figures.spent) / MICROS_PER_CENT, "low_balance_cents": low},
                event_id=f"evt_balance_exhausted_{request.owner_id}_{figures.limit}")
            return
        # The same event id as the spend tracker's crossing (services/ledger/spend.py): one event a crossing.
        await self._events.emit(
            events.SUBACCOUNT_SPEND_EXCEEDED, request.account_id,
            {"sub_account_id": request.owner_id, "month": figures.period, "spent_cents": cents(figures.spent),
             "spend_cap_cents": figures.limit // MICROS_PER_CENT},
            event_id=f"evt_spend_{request.owner_id}_{figures.period}_{figures.limit}")
