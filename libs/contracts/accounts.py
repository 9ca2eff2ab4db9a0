"""Account state kept in NATS KV: sub-accounts and their month-to-date spend.

Every replica of every service reads these through a KV mirror
(libs/runtime/kv_mirror.py); writes go through the ledger and use the KV
revision for optimistic concurrency.
"""

import msgspec

from libs.contracts.money import cents


class SubAccountRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    account_id: str
    name: str
    spend_cap_cents: int
    external_ref: str | None = None
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    default_tag: str | None = None
    metadata: dict[str, str] = {}
    created_at: int = 0
    key_id: str | None = None  # the sub-account's current key
    snapshots: bool = True  # keep request snapshots for replays; False opts the customer out


class SpendStatus(msgspec.Struct, kw_only=True):
    """Month-to-date spend of one sub-account, published by the ledger, enforced by the edge."""

    subaccount_id: str
    month: str  # YYYY-MM (UTC) the figures belong to
    spent_micros: int
    cap_micros: int
    exceeded: bool


class BudgetRecord(msgspec.Struct, kw_only=True):
    """A monthly budget for one tag: alerts (usage.threshold.exceeded) at percentages of the cap."""

    id: str  # derived from account and tag: one budget per tag, POST again to change it
    account_id: str
    tag: str
    cap_cents: int
    thresholds: list[int]  # percent of the cap, ascending
    created_at: int
    month: str = ""  # the month `notified` refers to
    notified: list[int] = []  # thresholds already announced this month


class WalletRecord(msgspec.Struct, kw_only=True):
    """An account's prepaid balance. Exists once the account is first topped up; from then on
    the edge refuses the account's traffic with 402 when the balance is exhausted."""

    account_id: str
    credited_micros: int  # all top-ups
    since_ms: int  # spend counts against the wallet from its first top-up on
    low_micros: int  # balance.low fires when the balance drops below this
    balance_micros: int  # credited - spend since `since_ms`, as last computed by the ledger
    exhausted: bool = False
    low_notified: bool = False
    exhausted_notified: bool = False


def spend_refusal(subaccount_id: str | None, wallet: WalletRecord | None, status: SpendStatus | None, month: str,
                  *, unseen_spend_micros: int = 0, unseen_wallet_micros: int = 0) -> str | None:
    """Why a caller may not start paid work now (None: it may). The one rule for the edge (each
    request) and the jobs service (each batch line, each eval run). `month` is the current UTC
    'YYYY-MM'; the `unseen_*` amounts are spend the caller knows of that the ledger's figures
    do not include yet (a batch's own recent lines), so long async work stops at the cap."""
    if wallet is not None and (wallet.exhausted or (
            unseen_wallet_micros > 0 and wallet.balance_micros - unseen_wallet_micros <= 0)):
        return "The account's prepaid balance is exhausted. Top it up with POST /v1/balance/top-up."
    if subaccount_id is None or status is None or status.month != month:
        return None
    spent = status.spent_micros + max(unseen_spend_micros, 0)
    if status.exceeded or (status.cap_micros > 0 and spent >= status.cap_micros):
        return (f"Sub-account {subaccount_id} reached its monthly spend cap of "
                f"${cents(status.cap_micros) / 100:.2f} (spent ${cents(spent) / 100:.4f}). "
                f"Raise spend_cap_cents with PATCH /v1/sub-accounts/{subaccount_id}, "
                "or wait for the month rollover.")
    return None


encode = msgspec.json.Encoder().encode
decode_budget = msgspec.json.Decoder(BudgetRecord).decode
decode_wallet = msgspec.json.Decoder(WalletRecord).decode
decode_subaccount = msgspec.json.Decoder(SubAccountRecord).decode
decode_spend = msgspec.json.Decoder(SpendStatus).decode
