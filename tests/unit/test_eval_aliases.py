"""services.router.eval_aliases: eval:<id> resolution and eval-informed quality, per caller."""

import pytest

from libs.contracts import errors
from libs.contracts.bus.inference import Principal
from libs.contracts.bus.jobs import EvalWinner
from services.router.catalog import RouteError
from services.router.eval_aliases import EvalAliases

ROOT = Principal("acct", "key_root")
ALICE = Principal("acct", "key_alice", "sa_alice")
BOB = Principal("acct", "key_bob", "sa_bob")
STRANGER = Principal("other", "key_x")


def _aliases() -> EvalAliases:
    aliases = EvalAliases()
    aliases.mirror.entries.update({
        "eval_account": EvalWinner(eval_id="eval_account", account_id="acct", model="m/a", metric="quality",
                                   scores={"m/a": 0.9, "m/b": 0.2}, completed_ms=1),
        "eval_newer": EvalWinner(eval_id="eval_newer", account_id="acct", model="m/b", metric="quality",
                                 scores={"m/b": 0.8}, completed_ms=2),
        "eval_alice": EvalWinner(eval_id="eval_alice", account_id="acct", subaccount_id="sa_alice", model="m/c",
                                 metric="quality", scores={"m/c": 1.0}, completed_ms=3),
        "eval_cost": EvalWinner(eval_id="eval_cost", account_id="acct", model="m/d", metric="cost", completed_ms=4),
    })
    return aliases


def test_resolve_for_the_account_and_its_sub_accounts() -> None:
    aliases = _aliases()
    assert aliases.resolve("eval:eval_account", ROOT) == "m/a"
    assert aliases.resolve("eval:eval_account", BOB) == "m/a"  # the account's evals serve its sub-accounts
    assert aliases.resolve("eval:eval_alice", ALICE) == "m/c"


@pytest.mark.parametrize(("model", "principal"), [
    ("eval:eval_alice", BOB), ("eval:eval_alice", ROOT), ("eval:eval_account", STRANGER), ("eval:nope", ROOT),
])
def test_resolve_refuses_other_tenants_like_unknown_ids(model: str, principal: Principal) -> None:
    with pytest.raises(RouteError) as err:
        _aliases().resolve(model, principal)
    assert (err.value.status, err.value.type) == (404, errors.MODEL_NOT_FOUND)


def test_latest_quality_eval_per_caller() -> None:
    aliases = _aliases()
    assert aliases.latest_quality(ROOT) == {"m/b": 0.8}  # newest quality eval; cost evals carry no scores
    assert aliases.latest_quality(ALICE) == {"m/c": 1.0}
    assert aliases.latest_quality(STRANGER) == {}
