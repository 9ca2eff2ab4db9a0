"""POST /v1/replays: re-run a past request (its snapshot, from the ledger) on
another model, and compare cost, latency and output side by side.

A replay is billed like any request, to the caller, under the caller's tag (or
"replay"). A shadow replay is queued on the JOBS work queue and answered 202;
otherwise the caller waits for the comparison.
"""

import difflib
import secrets
import time

import msgspec
import nats.errors
from nats.aio.client import Client

from libs.contracts import errors, subjects
from libs.contracts.bus import jobs as jobs_bus
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Failure, Principal, Reply, decode_reply
from libs.contracts.bus.ledger import SnapshotAnswer
from libs.contracts.errors import ErrorBody
from libs.contracts.http import replays as http
from libs.contracts.money import cents
from services.jobs.inference import Outcome, RouterClient, chat_body
from services.jobs.outputs import answer_of
from services.jobs.records import Records

_LEDGER_TIMEOUT_S = 10.0
_MAX_OUTPUT = 64 * 1024  # characters of each output kept in the record
_DEFAULT_TAG = "replay"
_decode_create = msgspec.json.Decoder(http.ReplayCreate).decode


def _fail(status: int, message: str, param: str | None = None, type_: str = errors.INVALID_REQUEST) -> Failure:
    return Failure(ErrorBody(message, type_, status, param))


class ReplayError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.error.message)
        self.failure = failure


def compare(source: http.ReplaySide, target: http.ReplaySide) -> http.ReplayDiff:
    # One line per diff line: outputs rarely end in a newline, and keepends ran the last lines together.
    diff = "\n".join(difflib.unified_diff(source.output.splitlines(), target.output.splitlines(),
                                         "source", "target", lineterm=""))
    diff = diff + "\n" if diff else diff
    return http.ReplayDiff(
        cost_delta_cents=round(target.cost_cents - source.cost_cents, 6),
        cost_ratio=round(target.cost_micros / source.cost_micros, 4) if source.cost_micros else None,
        latency_delta_ms=round(target.latency_ms - source.latency_ms, 3),
        output_identical=source.output == target.output,
        output_similarity=round(difflib.SequenceMatcher(None, source.output, target.output).ratio(), 4),
        output_diff=diff[:_MAX_OUTPUT])


def source_side(found: SnapshotAnswer) -> http.ReplaySide:
    snapshot, event = found.snapshot, found.event
    answer = answer_of(snapshot.response_body, snapshot.streamed)
    side = http.ReplaySide(request_id=snapshot.request_id, model=snapshot.model, output=answer.text[:_MAX_OUTPUT],
                           finish_reason=answer.finish_reason)
    if event is not None:
        side.provider, side.status = event.provider, event.status
        side.input_units, side.output_units = event.input_units, event.output_units
        side.cost_micros, side.cost_cents = event.cost_micros, cents(event.cost_micros)
        side.latency_ms = event.upstream_latency_ms
    return side


def target_side(model: str, outcome: Outcome) -> http.ReplaySide:
    meta = outcome.meta
    side = http.ReplaySide(request_id=outcome.request_id, model=meta.model if meta else model,
                           provider=meta.provider if meta else None, status=outcome.status,
                           cost_micros=outcome.cost_micros, cost_cents=cents(outcome.cost_micros),
                           latency_ms=round(outcome.latency_ms, 3), error=outcome.error)
    if meta is not None and meta.usage is not None:
        side.input_units, side.output_units = meta.usage.input_units, meta.usage.output_units
    if outcome.status == 200:
        answer = answer_of(outcome.body, streamed=False)
        side.output, side.finish_reason = answer.text[:_MAX_OUTPUT], answer.finish_reason
    return side


class Replays:
    def __init__(self, nc: Client, records: Records[http.ReplayView], router: RouterClient) -> None:
        self._nc = nc
        self._records = records
        self._router = router

    async def create(self, request: jobs_bus.JobsRequest) -> Reply | Failure:
        body = _decode_create(request.body)
        principal = request.principal
        view = http.ReplayView(id=f"rpl_{secrets.token_hex(10)}", status="queued",
                               source_request_id=body.source_request_id, target_model=body.target_model,
                               shadow=body.shadow, created=int(time.time()), sub_account_id=principal.subaccount_id)
        # The source must exist before anything is queued or billed: a bad id is the caller's 404 now.
        try:
            await self._snapshot(principal, body.source_request_id)
        except ReplayError as exc:
            return exc.failure
        await self._records.put(principal.account_id, view.id, view)
        if body.shadow:
            work = jobs_bus.ReplayWork(view.id, principal, request.tag)
            await self._nc.jetstream().publish(subjects.JOBS_WORK_REPLAY, jobs_bus.encode(work),
                                               headers={"Nats-Msg-Id": view.id})
            return Reply(202, http.encode(view))
        view = await self.run(jobs_bus.ReplayWork(view.id, principal, request.tag))
        return Reply(200, http.encode(view))

    async def run(self, work: jobs_bus.ReplayWork) -> http.ReplayView:
        """Run a recorded replay to its end (idempotent once completed: a redelivery does nothing)."""
        principal = work.principal
        view = await self._records.get(principal.account_id, work.replay_id)
        if view is None:
            raise LookupError(f"replay {work.replay_id} has no record")
        if view.status in ("completed", "failed"):
            return view
        view.status = "running"
        await self._records.put(principal.account_id, view.id, view)
        try:
            found = await self._snapshot(principal, view.source_request_id)
            source = source_side(found)
            outcome = await self._router.chat(principal, view.target_model,
                                              chat_body(found.snapshot.request_body, view.target_model),
                                              work.tag or _DEFAULT_TAG)
        except ReplayError as exc:
            view.status, view.error = "failed", exc.failure.error.message
        except ValueError as exc:
            view.status, view.error = "failed", f"The source request cannot be replayed: {exc}"
        else:
            target = target_side(view.target_model, outcome)
            view.source, view.target = source, target
            if outcome.status == 200:
                view.status, view.diff = "completed", compare(source, target)
            else:
                view.status, view.error = "failed", f"The target model failed ({outcome.status}): {outcome.error}"
        view.completed = int(time.time())
        await self._records.put(principal.account_id, view.id, view)
        return view

    async def give_up(self, data: bytes, why: str) -> None:
        work = jobs_bus.decode_replay_work(data)
        view = await self._records.get(work.principal.account_id, work.replay_id)
        if view is not None and view.status not in ("completed", "failed"):
            view.status, view.error, view.completed = "failed", f"The replay {why}.", int(time.time())
            await self._records.put(work.principal.account_id, view.id, view)

    async def _snapshot(self, principal: Principal, request_id: str) -> SnapshotAnswer:
        query = ledger_bus.SnapshotQuery(principal.account_id, request_id, principal.subaccount_id)
        try:
            msg = await self._nc.request(subjects.LEDGER_SNAPSHOT, ledger_bus.encode(query),
                                         timeout=_LEDGER_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            raise ReplayError(_fail(503, "The ledger (request snapshots) is not answering; retry.",
                                    type_=errors.UNAVAILABLE)) from exc
        reply = decode_reply(msg.data)
        if isinstance(reply, Failure):
            raise ReplayError(reply)
        if not isinstance(reply, Reply):
            raise ReplayError(_fail(502, "The ledger answered out of protocol.", type_=errors.INTERNAL))
        found = ledger_bus.decode_snapshot_answer(reply.body)
        if found.snapshot.truncated or not found.snapshot.request_body:
            raise ReplayError(_fail(422, f"Request '{request_id}' was too large to keep a snapshot of; "
                                         "it cannot be replayed.", "source_request_id"))
        return found
