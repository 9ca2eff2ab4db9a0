"""Prepaid balances: top-ups, the running balance, and its two alerts.

An account has a wallet once it is first topped up. After each stored batch
the ledger recomputes the balance of the accounts the batch touched (credits
minus spend since the first top-up: the store's daily aggregate for whole days,
its events in time order for the rest of the top-up's day) and publishes it in
the KV bucket `sb_wallets`; edges refuse an exhausted account with 402.
`balance.low` and `balance.exhausted` fire once per crossing; a top-up that
lifts the balance back re-arms them.
"""

import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from libs.contracts import errors, subjects
from libs.contracts.accounts import WalletRecord, decode_wallet
from libs.contracts.accounts import encode as encode_record
from libs.contracts.bus import events
from libs.contracts.bus.ledger import AdminRequest
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.http import accounts as http
from libs.contracts.money import MICROS_PER_CENT
from libs.runtime.events import EventPublisher
from libs.runtime.kv_mirror import KvMirror
from services.ledger.admin_ops import Answer, Ops, fail, ok
from services.ledger.stores.base import UsageStore

DEFAULT_LOW_CENTS = 500
_RETRIES = 5


class Wallets:
    def __init__(self, store: UsageStore, events_out: EventPublisher) -> None:
        self.mirror: KvMirror[WalletRecord] = KvMirror(subjects.KV_WALLETS, decode_wallet)
        self._store = store
        self._events = events_out
        self.ops: Ops = {"balance.get": self._get, "balance.topup": self._top_up}

    async def _spent_since(self, account_id: str, since_ms: int) -> int:
        return sum((await self._store.spend_since(account_id, since_ms, "subaccount")).values())

    def _view(self, wallet: WalletRecord | None) -> http.Balance:
        if wallet is None:
            return http.Balance(cents=0, usd=0.0, credited_cents=0, low_balance_cents=DEFAULT_LOW_CENTS,
                                exhausted=False)
        return http.Balance(cents=wallet.balance_micros // MICROS_PER_CENT, usd=wallet.balance_micros / 1_000_000,
                            credited_cents=wallet.credited_micros // MICROS_PER_CENT,
                            low_balance_cents=wallet.low_micros // MICROS_PER_CENT, exhausted=wallet.exhausted)

    async def _get(self, request: AdminRequest) -> Answer:
        wallet = self.mirror.entries.get(request.principal.account_id)
        if wallet is not None:
            wallet = await self._recompute(wallet.account_id) or wallet
        return ok(self._view(wallet))

    async def _top_up(self, request: AdminRequest) -> Answer:
        body = msgspec.json.decode(request.body, type=http.TopUp)
        account_id = request.principal.account_id
        assert self.mirror.kv is not None
        for _ in range(_RETRIES):
            try:
                entry = await self.mirror.kv.get(account_id)
            except KeyNotFoundError:  # the first top-up creates the wallet
                entry = None
            if entry is None or entry.value is None:
                wallet = WalletRecord(account_id=account_id, credited_micros=0, since_ms=int(time.time() * 1000),
                                      low_micros=DEFAULT_LOW_CENTS * MICROS_PER_CENT, balance_micros=0)
            else:
                wallet = decode_wallet(entry.value)
            wallet = msgspec.structs.replace(
                wallet, credited_micros=wallet.credited_micros + body.cents * MICROS_PER_CENT,
                low_micros=body.low_balance_cents * MICROS_PER_CENT if body.low_balance_cents is not None
                else wallet.low_micros)
            wallet = self._settle(wallet, await self._spent_since(account_id, wallet.since_ms))
            try:
                if entry is None or entry.value is None:
                    await self.mirror.kv.create(account_id, encode_record(wallet))
                else:
                    await self.mirror.kv.update(account_id, encode_record(wallet), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # a concurrent top-up or recompute won: redo on its result
            await self._wait(wallet)
            return ok(self._view(wallet))
        return fail(409, errors.INVALID_REQUEST, "The balance changed concurrently; retry.")

    async def _wait(self, wallet: WalletRecord) -> None:
        await self.mirror.wait_until(lambda entries: entries.get(wallet.account_id) == wallet)

    @staticmethod
    def _settle(wallet: WalletRecord, spent: int) -> WalletRecord:
        balance = wallet.credited_micros - spent
        return msgspec.structs.replace(
            wallet, balance_micros=balance, exhausted=balance <= 0,
            # Back above a threshold: the next crossing is announced again.
            low_notified=wallet.low_notified and balance < wallet.low_micros,
            exhausted_notified=wallet.exhausted_notified and balance <= 0)

    async def after_batch(self, batch: list[UsageEvent]) -> None:
        for account_id in {e.account_id for e in batch if e.cost_micros}:
            if account_id in self.mirror.entries:
                await self._recompute(account_id)

    async def _recompute(self, account_id: str) -> WalletRecord | None:
        assert self.mirror.kv is not None
        for _ in range(_RETRIES):
            try:
                entry = await self.mirror.kv.get(account_id)
            except KeyNotFoundError:
                return None
            if entry.value is None:
                return None
            current = decode_wallet(entry.value)
            wallet = self._settle(current, await self._spent_since(account_id, current.since_ms))
            announce_low = wallet.balance_micros < wallet.low_micros and not wallet.low_notified
            announce_exhausted = wallet.exhausted and not wallet.exhausted_notified
            wallet = msgspec.structs.replace(wallet, low_notified=wallet.low_notified or announce_low,
                                             exhausted_notified=wallet.exhausted_notified or announce_exhausted)
            if wallet == current:
                return wallet
            try:
                await self.mirror.kv.update(account_id, encode_record(wallet), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            data = {"balance_cents": wallet.balance_micros / MICROS_PER_CENT,
                    "low_balance_cents": wallet.low_micros // MICROS_PER_CENT}
            if announce_low:
                await self._events.emit(events.BALANCE_LOW, account_id, data)
            if announce_exhausted:
                await self._events.emit(events.BALANCE_EXHAUSTED, account_id, data)
            return wallet
        return None
