"""Edge -> jobs calls (evals and replays) and the work the jobs replicas pull
from the JOBS work queue.

The edge authenticates and forwards; the jobs service validates the body and
answers with bus.inference.Reply / Failure carrying the public JSON.
"""

from typing import Final

import msgspec

from libs.contracts.bus.inference import Principal

OP_EVAL_CREATE: Final = "eval.create"
OP_EVAL_LIST: Final = "eval.list"
OP_EVAL_GET: Final = "eval.get"
OP_REPLAY_CREATE: Final = "replay.create"
OP_REPLAY_LIST: Final = "replay.list"
OP_REPLAY_GET: Final = "replay.get"
JOBS_OPS: Final = (OP_EVAL_CREATE, OP_EVAL_LIST, OP_EVAL_GET, OP_REPLAY_CREATE, OP_REPLAY_LIST, OP_REPLAY_GET)
# Async jobs (generations, chat with webhook_url): body = http/jobs.py JobCreate / JobQuery (msgpack).
OP_JOB_CREATE: Final = "job.create"
OP_JOB_GET: Final = "job.get"
OP_JOB_LIST: Final = "job.list"
OP_JOB_CANCEL: Final = "job.cancel"
OP_JOB_DELETE: Final = "job.delete"  # DELETE /v1/videos/{id}: cancel if running, then forget it and its files
EVAL_ALIAS_PREFIX: Final = "eval:"  # model: "eval:<id>" routes to that eval's winner


class JobsRequest(msgspec.Struct, array_like=True):
    op: str  # one of JOBS_OPS
    principal: Principal
    target_id: str | None = None
    body: bytes = b""
    tag: str | None = None  # x-aig-tag of the call: the tag its inference is attributed to
    traceparent: str | None = None


class EvalWork(msgspec.Struct):
    """One eval to run, on the JOBS work queue. `spec` is the validated EvalCreate JSON."""

    eval_id: str
    principal: Principal
    spec: bytes
    tag: str | None = None


class ReplayWork(msgspec.Struct):
    """One shadow replay to run, on the JOBS work queue."""

    replay_id: str
    principal: Principal
    tag: str | None = None


class JobWork(msgspec.Struct, array_like=True):
    """One async job on the JOBS work queue (JOBS_WORK_GENERATION polls, JOBS_WORK_CHAT runs);
    everything else is in its record (KV sb_jobs `<account_id>.<job_id>`). Nats-Msg-Id = job id."""

    job_id: str
    account_id: str


class EvalWinner(msgspec.Struct, kw_only=True):
    """What routers need from a finished eval (KV sb_eval_winners, key = eval id)."""

    eval_id: str
    account_id: str
    subaccount_id: str | None = None  # set: only this sub-account may route to it
    model: str
    metric: str
    scores: dict[str, float] = {}  # quality evals: each candidate's score, 0..1
    completed_ms: int = 0


encode = msgspec.msgpack.Encoder().encode
decode_request = msgspec.msgpack.Decoder(JobsRequest).decode
decode_eval_work = msgspec.msgpack.Decoder(EvalWork).decode
decode_replay_work = msgspec.msgpack.Decoder(ReplayWork).decode
decode_job_work = msgspec.msgpack.Decoder(JobWork).decode
encode_winner = msgspec.json.Encoder().encode
decode_winner = msgspec.json.Decoder(EvalWinner).decode
