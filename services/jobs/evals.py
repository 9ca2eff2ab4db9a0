"""POST /v1/evals: run a dataset across candidate models, score the answers, and
name a winner that `model: "eval:<id>"` then routes to.

Creating an eval records it (queued) and puts the run on the JOBS work queue; a
jobs replica pulls it, runs every item on every model through the router (so
each call is metered and billed like any request, under the caller's tag or
"eval:<id>"), and records per-model score, cost and latency.
"""

import asyncio
import secrets
import time

import msgspec
from nats.aio.client import Client
from nats.js.kv import KeyValue

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus.inference import Failure, Principal, Reply
from libs.contracts.errors import ErrorBody
from libs.contracts.http import evals as http
from libs.contracts.money import cents
from libs.runtime.files import FileStore
from services.jobs.caps import Budget, Caps
from services.jobs.inference import Outcome, RouterClient, chat_body
from services.jobs.jsonl import numbered
from services.jobs.outputs import answer_of
from services.jobs.records import Records
from services.jobs.scorers import (
    CompiledScorer,
    ScorerError,
    ScoreTimeout,
    compile_scorer,
    judge_request,
    parse_judgement,
    validate_scorer,
)

_decode_create = msgspec.json.Decoder(http.EvalCreate).decode
_RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "n"})


def _bad(message: str, param: str) -> Failure:
    return Failure(ErrorBody(message, errors.INVALID_REQUEST, 400, param))


def check(spec: http.EvalCreate) -> Failure | None:
    """What msgspec cannot say about an eval body, as a 400 naming the field."""
    if len(set(spec.candidate_models)) != len(spec.candidate_models):
        return _bad("candidate_models lists a model twice.", "candidate_models")
    if any(m.startswith(jobs_bus.EVAL_ALIAS_PREFIX) for m in spec.candidate_models):
        return _bad("An eval alias cannot be a candidate; name the models.", "candidate_models")
    if len(spec.dataset) * len(spec.candidate_models) > http.MAX_RUNS:
        return _bad(f"dataset x candidate_models is more than {http.MAX_RUNS} runs; split the eval.", "dataset")
    for index, item in enumerate(spec.dataset):
        if (item.input is None) == (item.messages is None):
            return _bad(f"dataset[{index}] needs exactly one of 'input' or 'messages'.", f"dataset[{index}]")
        if item.messages is not None and not item.messages:
            return _bad(f"dataset[{index}].messages is empty.", f"dataset[{index}].messages")
    reserved = _RESERVED_PARAMS & spec.params.keys()
    if reserved:
        return _bad(f"params cannot set {', '.join(sorted(reserved))}.", "params")
    if spec.metric == "quality":
        try:
            validate_scorer(spec.scorer or http.Scorer(), spec.dataset)
        except ScorerError as exc:
            return _bad(str(exc), exc.param)
    return None


def item_body(spec: http.EvalCreate, item: http.EvalItem) -> bytes:
    messages = item.messages if item.messages is not None else [{"role": "user", "content": item.input}]
    return msgspec.json.encode({**spec.params, "model": "", "messages": messages})


def _nearest_rank(values: list[float], q: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[(q * len(ordered) + 99) // 100 - 1], 3)


def summarise(model: str, items: list[http.ItemResult], quality: bool) -> http.ModelResult:
    ok = [i for i in items if i.status == 200]
    scores = [i.score for i in items if i.score is not None]
    cost = sum(i.cost_micros for i in items)
    return http.ModelResult(
        model=model, requests=len(items), errors=len(items) - len(ok),
        score=round(sum(scores) / len(scores), 4) if quality and scores else None,
        cost_micros=cost, cost_cents=cents(cost), mean_cost_cents=round(cents(cost) / len(items), 6) if items else 0.0,
        p50_latency_ms=_nearest_rank([i.latency_ms for i in ok], 50),
        p95_latency_ms=_nearest_rank([i.latency_ms for i in ok], 95))


def winner(metric: str, results: list[http.ModelResult]) -> str | None:
    """The best model by the metric, among those that answered (nearly) as reliably as the best one."""
    rate = {r.model: (r.requests - r.errors) / r.requests for r in results if r.requests}
    best_rate = max(rate.values(), default=0.0)
    if best_rate == 0:
        return None
    eligible = [r for r in results if rate.get(r.model, 0) >= 0.9 * best_rate]
    inf = float("inf")
    if metric == "quality":
        eligible = [r for r in eligible if r.score is not None]  # e.g. every judgement failed: no verdict
        if not eligible:
            return None
        ranked = sorted(eligible, key=lambda r: (-(r.score or 0.0), r.mean_cost_cents, r.p50_latency_ms or inf))
    elif metric == "cost":
        ranked = sorted(eligible, key=lambda r: (r.mean_cost_cents, r.p50_latency_ms or inf))
    else:
        ranked = sorted(eligible, key=lambda r: (r.p50_latency_ms or inf, r.mean_cost_cents))
    return ranked[0].model


class Evals:
    def __init__(self, nc: Client, records: Records[http.EvalView], winners: KeyValue, router: RouterClient,
                 concurrency: int, *, caps: Caps, files: FileStore) -> None:
        self._nc = nc
        self._records = records
        self._winners = winners
        self._router = router
        self._concurrency = concurrency
        self._caps = caps
        self._files = files

    async def _with_dataset(self, spec: http.EvalCreate, principal: Principal) -> http.EvalCreate | Failure:
        """The spec with its dataset in it: inline, or read from the caller's dataset_file_id."""
        if spec.dataset_file_id is None:
            return spec if spec.dataset else _bad("dataset is empty; send items or a dataset_file_id.", "dataset")
        if spec.dataset:
            return _bad("Send either dataset or dataset_file_id, not both.", "dataset_file_id")
        missing = Failure(ErrorBody(f"No file with id '{spec.dataset_file_id}' for this key.",
                                    errors.INVALID_REQUEST, 404, "dataset_file_id"))
        record = await self._files.find(principal, spec.dataset_file_id)
        if record is None:
            return missing
        items: list[http.EvalItem] = []
        try:
            async for line_no, raw in numbered(await self._files.chunks(record)):
                if len(items) >= http.MAX_ITEMS:
                    return _bad(f"dataset_file_id holds more than {http.MAX_ITEMS} items.", "dataset_file_id")
                try:
                    items.append(http.decode_item(raw))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    return _bad(f"dataset_file_id line {line_no} is not an eval item: {exc}", "dataset_file_id")
        except LookupError:
            return missing
        if not items:
            return _bad("dataset_file_id holds no items.", "dataset_file_id")
        return msgspec.structs.replace(spec, dataset=items)

    async def create(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        spec = await self._with_dataset(_decode_create(request.body), request.principal)
        if isinstance(spec, Failure):
            return spec
        problem = check(spec)
        if problem is not None:
            return problem
        principal = request.principal
        view = http.EvalView(id=f"eval_{secrets.token_hex(10)}", name=spec.name, status="queued", metric=spec.metric,
                             candidate_models=spec.candidate_models, dataset_size=len(spec.dataset),
                             created=int(time.time()), scorer=(spec.scorer or http.Scorer())
                             if spec.metric == "quality" else spec.scorer, sub_account_id=principal.subaccount_id)
        await self._records.put(principal.account_id, view.id, view)
        work = jobs_bus.EvalWork(view.id, principal, request.body, request.tag)
        await self._nc.jetstream().publish(subjects.JOBS_WORK_EVAL, jobs_bus.encode(work),
                                           headers={"Nats-Msg-Id": view.id})
        return Reply(200, http.encode(view))

    async def run(self, work: jobs_bus.EvalWork) -> http.EvalView:
        principal = work.principal
        view = await self._records.get(principal.account_id, work.eval_id)
        if view is None:
            raise LookupError(f"eval {work.eval_id} has no record")
        if view.status in ("completed", "failed"):
            return view  # a redelivered message after the run was recorded
        view.status, view.started = "running", int(time.time())
        await self._records.put(principal.account_id, view.id, view)
        spec = await self._with_dataset(_decode_create(work.spec), principal)
        if isinstance(spec, Failure):  # the dataset file went away after the eval was created
            view.status, view.error, view.completed = "failed", spec.error.message, int(time.time())
            await self._records.put(principal.account_id, view.id, view)
            return view
        scorer = compile_scorer(spec.scorer or http.Scorer()) if spec.metric == "quality" else None
        tag = work.tag or f"eval:{view.id}"
        gate = asyncio.Semaphore(self._concurrency)
        budget = self._caps.budget(principal)

        async def one(model: str, index: int, item: http.EvalItem) -> http.ItemResult:
            async with gate:
                # A long eval stops at the caller's spend cap: the items after it are refused, unbilled.
                refusal = budget.refusal()
                if refusal is not None:
                    return http.ItemResult(index=index, model=model, status=402, error=refusal,
                                           score=0.0 if scorer is not None else None)
                outcome = await self._router.chat(principal, model, chat_body(item_body(spec, item), model), tag)
                budget.spent(outcome.cost_micros)
                return await self._result(model, index, item, outcome, scorer, principal, tag, budget)

        runs = [one(model, index, item) for model in spec.candidate_models for index, item in enumerate(spec.dataset)]
        view.items = list(await asyncio.gather(*runs))
        view.results = [summarise(model, [i for i in view.items if i.model == model], scorer is not None)
                        for model in spec.candidate_models]
        view.winner_model = winner(spec.metric, view.results)
        view.status, view.completed = "completed", int(time.time())
        if view.winner_model is None:
            view.status = "failed"
            view.error = "No candidate model could be ranked: none answered, or none was scored; see items[].error."
        else:
            await self._winners.put(view.id, jobs_bus.encode_winner(jobs_bus.EvalWinner(
                eval_id=view.id, account_id=principal.account_id, subaccount_id=principal.subaccount_id,
                model=view.winner_model, metric=spec.metric, completed_ms=time.time_ns() // 1_000_000,
                scores={r.model: r.score for r in view.results if r.score is not None})))
        await self._records.put(principal.account_id, view.id, view)
        return view

    async def give_up(self, data: bytes, why: str) -> None:
        work = jobs_bus.decode_eval_work(data)
        view = await self._records.get(work.principal.account_id, work.eval_id)
        if view is not None and view.status not in ("completed", "failed"):
            view.status, view.error, view.completed = "failed", f"The eval run {why}.", int(time.time())
            await self._records.put(work.principal.account_id, view.id, view)

    async def _result(self, model: str, index: int, item: http.EvalItem, outcome: Outcome,
                      scorer: CompiledScorer | None, principal: Principal, tag: str, budget: Budget
                      ) -> http.ItemResult:
        result = http.ItemResult(index=index, model=model, status=outcome.status, cost_micros=outcome.cost_micros,
                                 latency_ms=round(outcome.latency_ms, 3), error=outcome.error)
        if outcome.status != 200:
            result.score = 0.0 if scorer is not None else None  # a failed answer is a wrong answer
            return result
        text = answer_of(outcome.body, streamed=False).text
        result.output = text[:http.OUTPUT_PREVIEW]
        if scorer is None:
            return result
        if scorer.scorer.type != "judge":
            try:
                result.score = scorer.score(item, text)
            except ScoreTimeout as exc:  # the pattern, not the model, failed: scored as a failure, with why
                result.score, result.error = 0.0, str(exc)
            return result
        judge_model = scorer.scorer.model or ""
        judged = await self._router.chat(principal, judge_model,
                                         chat_body(judge_request(scorer.scorer, item, text), judge_model), tag)
        budget.spent(judged.cost_micros)
        if judged.status == 200:
            result.score = parse_judgement(answer_of(judged.body, streamed=False).text)
        else:
            result.error = f"judge failed ({judged.status}): {judged.error}"
        return result
