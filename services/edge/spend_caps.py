"""Admission against spend caps and prepaid balances: which budgets a request draws on, and
its worst-case cost, reserved on this edge's leases (spend_leases.py) before it is sent.

Worst case = the input estimate (a unit per 4 bytes of the body: prompts are mostly text,
and a token is about 4 characters) plus the request's output limit (max_tokens and its
kin, times `n`; else SWITCHBOARD_RESERVE_OUTPUT_TOKENS (4096), or what the model's context
window leaves if that is less) at the dearest of the models that may serve it. An
input the estimate undercounts (images in a vision prompt, scripts with more tokens than
4-byte runs) is the estimate error a cap can be overshot by.

With SWITCHBOARD_SPEND_LEASES=0 nothing is reserved: caps are then enforced only by the
ledger's published spend (Tenancy.admit), which trails the traffic by a batch and a hook.
"""

import math

from libs.contracts.accounts import SubAccountRecord
from libs.contracts.bus.inference import Principal
from libs.contracts.bus.ledger import LEASE_SUB, LEASE_WALLET
from services.edge.prices import Prices
from services.edge.spend_leases import Hold, Owner, SpendLeases
from services.edge.tenancy import Tenancy

_BYTES_PER_UNIT = 4


def input_units(body: bytes) -> int:
    return math.ceil(len(body) / _BYTES_PER_UNIT)


class SpendCaps:
    def __init__(self, leases: SpendLeases | None, prices: Prices, tenancy: Tenancy, default_output: int) -> None:
        self.leases = leases
        self.prices = prices
        self._tenancy = tenancy
        self._default_output = default_output

    def _owners(self, principal: Principal, sub: SubAccountRecord | None) -> list[Owner]:
        owners = []
        if sub is not None and sub.spend_cap_cents > 0:
            owners.append(Owner(LEASE_SUB, sub.id, principal.account_id))
        if principal.account_id in self._tenancy.wallets.entries:
            owners.append(Owner(LEASE_WALLET, principal.account_id, principal.account_id))
        return owners

    def estimate(self, models: list[str], body: bytes, output_limit: int | None, *, choices: int = 1,
                 text_input: bool = True) -> int:
        """Micro-dollars the request may cost at most (`output_limit` None: the model's bound)."""
        units_in = input_units(body) if text_input else 0
        if output_limit is None:
            output_limit = max(self.prices.output_bound(m, units_in, self._default_output) for m in models)
        return self.prices.worst_case(models, units_in, output_limit * max(choices, 1))

    async def hold(self, principal: Principal, sub: SubAccountRecord | None, micros: int) -> Hold:
        """Reserve `micros` on every budget the caller draws on; 402 (or 503) if one cannot cover it."""
        if self.leases is None:
            return Hold([], 0)
        owners = self._owners(principal, sub)
        if not owners:
            return Hold([], 0)
        return await self.leases.reserve(owners, micros)

