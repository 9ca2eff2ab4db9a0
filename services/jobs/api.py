"""The jobs service's answers to the edge: create, list and get evals and replays."""

from collections.abc import Awaitable, Callable, Mapping

import msgspec
import structlog

from libs.contracts import errors
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, Reply
from libs.contracts.errors import ErrorBody
from libs.contracts.http import evals as evals_http
from libs.contracts.http import replays as replays_http
from libs.contracts.http.accounts import ListOf
from services.jobs.evals import Evals
from services.jobs.records import Records
from services.jobs.replays import Replays

log = structlog.get_logger()
Answer = Reply | Failure
_encode = msgspec.json.Encoder().encode


def _visible(record: evals_http.EvalView | replays_http.ReplayView, request: jobs_bus.JobsRequest) -> bool:
    # A sub-account key sees its own records only; the account's other keys see all of them.
    return request.principal.subaccount_id is None or record.sub_account_id == request.principal.subaccount_id


class JobsApi:
    def __init__(self, evals: Evals, eval_records: Records[evals_http.EvalView], replays: Replays,
                 replay_records: Records[replays_http.ReplayView],
                 more_ops: Mapping[str, Callable[[jobs_bus.JobsRequest], Awaitable[Answer]]]) -> None:
        self._eval_records = eval_records
        self._replay_records = replay_records
        self._ops: dict[str, Callable[[jobs_bus.JobsRequest], Awaitable[Answer]]] = {
            jobs_bus.OP_EVAL_CREATE: evals.create, jobs_bus.OP_EVAL_LIST: self._list_evals,
            jobs_bus.OP_EVAL_GET: self._get_eval, jobs_bus.OP_REPLAY_CREATE: replays.create,
            jobs_bus.OP_REPLAY_LIST: self._list_replays, jobs_bus.OP_REPLAY_GET: self._get_replay,
            **more_ops,
        }

    async def answer(self, data: bytes) -> Answer:
        try:
            request = jobs_bus.decode_request(data)
        except msgspec.DecodeError:
            return Failure(ErrorBody("undecodable jobs request", errors.INVALID_REQUEST, 400))
        op = self._ops.get(request.op)
        if op is None:
            return Failure(ErrorBody(f"unknown jobs operation {request.op!r}", errors.INVALID_REQUEST, 400))
        try:
            return await op(request)
        except msgspec.ValidationError as exc:
            return Failure(ErrorBody(f"Invalid request body: {exc}", errors.INVALID_REQUEST, 400))

    async def _list_evals(self, request: jobs_bus.JobsRequest) -> Answer:
        found = [r for r in await self._eval_records.list(request.principal.account_id) if _visible(r, request)]
        # The list is a summary: per-item results only come with GET /v1/evals/{id}.
        summaries = [msgspec.structs.replace(r, items=[]) for r in sorted(found, key=lambda r: (-r.created, r.id))]
        return Reply(200, _encode(ListOf(data=summaries)))

    async def _get_eval(self, request: jobs_bus.JobsRequest) -> Answer:
        record = await self._eval_records.get(request.principal.account_id, request.target_id or "")
        if record is None or not _visible(record, request):
            return _not_found("eval", request.target_id)
        return Reply(200, _encode(record))

    async def _list_replays(self, request: jobs_bus.JobsRequest) -> Answer:
        found = [r for r in await self._replay_records.list(request.principal.account_id) if _visible(r, request)]
        return Reply(200, _encode(ListOf(data=sorted(found, key=lambda r: (-r.created, r.id)))))

    async def _get_replay(self, request: jobs_bus.JobsRequest) -> Answer:
        record = await self._replay_records.get(request.principal.account_id, request.target_id or "")
        if record is None or not _visible(record, request):
            return _not_found("replay", request.target_id)
        return Reply(200, _encode(record))


def _not_found(kind: str, id_: str | None) -> Failure:
    # Another tenant's id reads exactly like an unknown one.
    return Failure(ErrorBody(f"No {kind} with id '{id_}' for this key.", errors.INVALID_REQUEST, 404, "id"))
