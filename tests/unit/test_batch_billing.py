"""The batch discount where the router prices a request, and the spend-cap rule shared by the
edge and the jobs service (with the jobs' Budget counting its own unseen spend)."""

import time

import pytest

from libs.contracts.accounts import SpendStatus, WalletRecord, spend_refusal
from libs.contracts.bus.inference import Principal, Usage
from libs.contracts.config import MeteringConfig
from services.jobs.caps import Caps
from services.router.pricing import Price, Pricing

MONTH = time.strftime("%Y-%m", time.gmtime())


def test_a_batch_line_costs_half_by_default_markup_included() -> None:
    pricing = Pricing.from_config(MeteringConfig())
    price = Price(input=3_000_000, output=15_000_000, cached_input=300_000)
    usage = Usage(input_units=120_000, output_units=40_000, cached_units=20_000)
    full = pricing.cost(price, usage, succeeded=True)
    half = pricing.cost(price, usage, succeeded=True, batch=True)
    assert (half.input_micros, half.output_micros, half.cached_micros) == (
        full.input_micros // 2, full.output_micros // 2, full.cached_micros // 2)
    assert half.total_micros == half.input_micros + half.output_micros + half.cached_micros + half.markup_micros
    assert abs(half.total_micros * 2 - full.total_micros) <= 2
    assert pricing.cost(price, None, succeeded=False, batch=True).total_micros == 0


def test_the_discount_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_BATCH_DISCOUNT_PERCENT", "0")
    price, usage = Price(1_000_000, 1_000_000, 1_000_000), Usage(1_000_000, 0, 0)
    none = Pricing.from_config(MeteringConfig())
    assert none.cost(price, usage, succeeded=True, batch=True) == none.cost(price, usage, succeeded=True)
    monkeypatch.setenv("SWITCHBOARD_BATCH_DISCOUNT_PERCENT", "150")
    with pytest.raises(SystemExit):
        Pricing.from_config(MeteringConfig())


def _status(spent: int, cap: int = 1000, month: str = MONTH) -> SpendStatus:
    return SpendStatus(subaccount_id="sa_1", month=month, spent_micros=spent, cap_micros=cap,
                       exceeded=cap > 0 and spent >= cap)


def _wallet(balance: int) -> WalletRecord:
    return WalletRecord(account_id="acc", credited_micros=10_000, since_ms=0, low_micros=0, balance_micros=balance,
                        exhausted=balance <= 0)


def test_the_rule_refuses_a_capped_sub_account_and_an_empty_wallet() -> None:
    assert spend_refusal("sa_1", None, _status(500), MONTH) is None
    assert "spend cap" in (spend_refusal("sa_1", None, _status(1000), MONTH) or "")
    assert spend_refusal("sa_1", None, _status(1000, month="2001-01"), MONTH) is None  # last month's figures
    assert spend_refusal("sa_1", None, _status(5000, cap=0), MONTH) is None  # a cap of 0 is no cap
    assert "spend cap" in (spend_refusal("sa_1", None, _status(600), MONTH, unseen_spend_micros=400) or "")
    assert "balance" in (spend_refusal(None, _wallet(0), None, MONTH) or "")
    assert spend_refusal(None, _wallet(100), None, MONTH) is None
    assert "balance" in (spend_refusal(None, _wallet(100), None, MONTH, unseen_wallet_micros=100) or "")


class _Entries:
    def __init__(self) -> None:
        self.entries: dict[str, object] = {}


def _caps(status: SpendStatus | None, wallet: WalletRecord | None) -> Caps:
    caps = Caps()
    caps.spend, caps.wallets = _Entries(), _Entries()  # type: ignore[assignment]
    if status is not None:
        caps.spend.entries["sa_1"] = status
    if wallet is not None:
        caps.wallets.entries["acc"] = wallet
    return caps


def test_a_budget_counts_its_own_spend_until_the_ledger_has_seen_it() -> None:
    caps = _caps(_status(200), None)
    budget = caps.budget(Principal("acc", "key", "sa_1"))
    budget.spent(500)
    assert budget.refusal() is None  # 200 + 500 < 1000
    budget.spent(300)
    assert budget.refusal() is not None  # 1000 reached, though the ledger still says 200
    caps.spend.entries["sa_1"] = _status(700)  # the ledger has seen 500 of ours: 700 + 300 unseen
    assert budget.refusal() is not None
    other = caps.budget(Principal("acc", "key2", "sa_1"))
    assert other.refusal() is None  # a new piece of work starts from the ledger's figure


def test_a_budget_stops_at_the_prepaid_balance() -> None:
    caps = _caps(None, _wallet(1000))
    budget = caps.budget(Principal("acc", "key"))
    budget.spent(999)
    assert budget.refusal() is None
    budget.spent(1)
    assert "balance" in (budget.refusal() or "")
