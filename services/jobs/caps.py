"""Spend caps and prepaid balances for async work: the edge admits a batch or an eval
when it is created, but one may run for hours; each line of a batch and each run of an
eval is checked here first, by the same rule the edge applies (accounts.spend_refusal).

The ledger's figures (KV sb_spend, sb_wallets) trail the work by a moment; a Budget
adds what its own work has cost since it started and the ledger has not counted yet,
so a batch stops at the cap instead of running on by its whole size. The overshoot is
bounded by the lines in flight when the cap is crossed. (The cap itself travels in the
spend status, so the sub-account records need no mirror here.)
"""

import time

from nats.js import JetStreamContext

from libs.contracts import accounts, subjects
from libs.contracts.accounts import SpendStatus, WalletRecord
from libs.contracts.bus.inference import Principal
from libs.runtime.kv_mirror import KvMirror


def current_month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


class Budget:
    """One piece of work's view of its caller's cap: refusal() before each paid call, spent() after."""

    def __init__(self, caps: "Caps", principal: Principal) -> None:
        self._caps = caps
        self._principal = principal
        status, wallet = caps.figures(principal)
        self._spent_at_start = status.spent_micros if status is not None else 0
        self._balance_at_start = wallet.balance_micros if wallet is not None else 0
        self._own_micros = 0

    def spent(self, micros: int) -> None:
        self._own_micros += max(micros, 0)

    def refusal(self) -> str | None:
        status, wallet = self._caps.figures(self._principal)
        # What the ledger has counted of our own work is at most how far its figure moved since we
        # started; the rest is still unseen. Other traffic moving it only makes this estimate lower.
        unseen_spend = 0
        if status is not None:
            unseen_spend = max(0, self._own_micros - max(0, status.spent_micros - self._spent_at_start))
        unseen_wallet = 0
        if wallet is not None:
            unseen_wallet = max(0, self._own_micros - max(0, self._balance_at_start - wallet.balance_micros))
        return accounts.spend_refusal(self._principal.subaccount_id, wallet, status, current_month(),
                                      unseen_spend_micros=unseen_spend, unseen_wallet_micros=unseen_wallet)


class Caps:
    def __init__(self) -> None:
        self.spend: KvMirror[SpendStatus] = KvMirror(subjects.KV_SPEND, accounts.decode_spend)
        self.wallets: KvMirror[WalletRecord] = KvMirror(subjects.KV_WALLETS, accounts.decode_wallet)
        self._mirrors = (self.spend, self.wallets)

    async def start(self, js: JetStreamContext) -> None:
        for mirror in self._mirrors:
            await mirror.start(js)

    async def resync(self) -> None:
        for mirror in self._mirrors:
            await mirror.resync()

    async def stop(self) -> None:
        for mirror in self._mirrors:
            await mirror.stop()

    def figures(self, principal: Principal) -> tuple[SpendStatus | None, WalletRecord | None]:
        status = self.spend.entries.get(principal.subaccount_id) if principal.subaccount_id is not None else None
        if status is not None and status.month != current_month():
            status = None  # last month's figures: this month starts from nothing
        return status, self.wallets.entries.get(principal.account_id)

    def budget(self, principal: Principal) -> Budget:
        return Budget(self, principal)
