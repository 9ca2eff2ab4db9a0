"""Sub-account state at the edge: caps, default tags and limits, from KV mirrors.

The ledger publishes each sub-account's month-to-date spend; the edge refuses
a sub-account at its cap with 402 before any work is done. That figure trails the
traffic by a batch and a hook, so on its own (SWITCHBOARD_SPEND_LEASES=0, and for
creating async jobs) a cap is overshot by what is admitted meanwhile; inference
requests also reserve their worst-case cost on leased budget (spend_leases.py),
which holds the cap under any concurrency.
"""

import calendar
import time

from nats.js import JetStreamContext

from libs.contracts import accounts, errors, subjects
from libs.contracts.accounts import SpendStatus, SubAccountRecord, WalletRecord
from libs.contracts.bus.inference import Principal
from libs.runtime.kv_mirror import KvMirror
from services.edge.errors import GatewayError
from services.edge.ratelimit import RateLimiter


class _Month:
    """The current UTC month as 'YYYY-MM', recomputed only when it ends."""

    def __init__(self) -> None:
        self._label = ""
        self._ends_at = 0.0

    def now(self) -> str:
        now = time.time()
        if now >= self._ends_at:
            t = time.gmtime(now)
            year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
            self._label = f"{t.tm_year:04d}-{t.tm_mon:02d}"
            self._ends_at = calendar.timegm((year, month, 1, 0, 0, 0))
        return self._label


class Tenancy:
    def __init__(self) -> None:
        self.subaccounts: KvMirror[SubAccountRecord] = KvMirror(subjects.KV_SUBACCOUNTS, accounts.decode_subaccount)
        self.spend: KvMirror[SpendStatus] = KvMirror(subjects.KV_SPEND, accounts.decode_spend)
        self.wallets: KvMirror[WalletRecord] = KvMirror(subjects.KV_WALLETS, accounts.decode_wallet)
        self._mirrors = (self.subaccounts, self.spend, self.wallets)
        self._month = _Month()

    async def start(self, js: JetStreamContext) -> None:
        for mirror in self._mirrors:
            await mirror.start(js)

    async def resync(self) -> None:
        for mirror in self._mirrors:
            await mirror.resync()

    async def stop(self) -> None:
        for mirror in self._mirrors:
            await mirror.stop()

    def admit(self, principal: Principal) -> SubAccountRecord | None:
        """The caller's sub-account (None for the root account); 402 if it is at its cap or the
        account's prepaid balance is exhausted."""
        refusal = accounts.spend_refusal(principal.subaccount_id, self.wallets.entries.get(principal.account_id),
                                         self.spend.entries.get(principal.subaccount_id or ""), self._month.now())
        if refusal is not None:
            raise GatewayError(402, errors.BUDGET_EXCEEDED, refusal, refusal="spend_cap")
        if principal.subaccount_id is None:
            return None
        return self.subaccounts.entries.get(principal.subaccount_id)

    def limit(self, limiter: RateLimiter, sub: SubAccountRecord | None) -> None:
        """The sub-account's RPM/TPM, counted across every edge replica; 429 when over."""
        if sub is None or (sub.rate_limit_rpm is None and sub.rate_limit_tpm is None):
            return
        retry_after = limiter.check_request(sub.id, sub.rate_limit_rpm, sub.rate_limit_tpm)
        if retry_after is not None:
            raise GatewayError(
                429, errors.RATE_LIMIT,
                f"Sub-account {sub.id} is over its rate limit ({sub.rate_limit_rpm or '-'} requests/min, "
                f"{sub.rate_limit_tpm or '-'} tokens/min). Honor Retry-After; ask for a higher limit.",
                retry_after=retry_after, refusal="rate_limit")

    def owns(self, principal: Principal, subaccount_id: str) -> bool:
        sub = self.subaccounts.entries.get(subaccount_id)
        return sub is not None and sub.account_id == principal.account_id
