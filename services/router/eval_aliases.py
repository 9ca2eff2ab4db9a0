"""`model: "eval:<id>"` and eval-informed quality routing, from the winners the
jobs service publishes to KV (sb_eval_winners), mirrored in every router."""

from libs.contracts import errors, subjects
from libs.contracts.bus.inference import Principal
from libs.contracts.bus.jobs import EVAL_ALIAS_PREFIX, EvalWinner, decode_winner
from libs.runtime.kv_mirror import KvMirror
from services.router.catalog import RouteError


class EvalAliases:
    def __init__(self) -> None:
        self.mirror: KvMirror[EvalWinner] = KvMirror(subjects.KV_EVAL_WINNERS, decode_winner)

    @staticmethod
    def _usable(winner: EvalWinner, principal: Principal) -> bool:
        # An account's evals serve all its keys; a sub-account's own evals serve only that sub-account.
        return winner.account_id == principal.account_id and (
            winner.subaccount_id is None or winner.subaccount_id == principal.subaccount_id)

    def resolve(self, model: str, principal: Principal) -> str:
        """The winning model of eval `model` ("eval:<id>"), for this caller."""
        eval_id = model[len(EVAL_ALIAS_PREFIX):]
        winner = self.mirror.entries.get(eval_id)
        if winner is None or not self._usable(winner, principal):
            raise RouteError(404, errors.MODEL_NOT_FOUND,
                             f"No finished eval '{eval_id}' for this key: `eval:<id>` routes to the winner of a "
                             "completed eval (GET /v1/evals lists yours).")
        return winner.model

    def latest_quality(self, principal: Principal) -> dict[str, float]:
        """Model scores from the caller's most recent finished quality eval (empty if none)."""
        latest: EvalWinner | None = None
        for winner in self.mirror.entries.values():
            if winner.metric == "quality" and winner.scores and self._usable(winner, principal) and (
                    latest is None or winner.completed_ms > latest.completed_ms):
                latest = winner
        return dict(latest.scores) if latest is not None else {}
