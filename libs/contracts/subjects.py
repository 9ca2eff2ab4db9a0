"""NATS subjects, queue groups and JetStream/KV names: the bus's address book.

Every service imports these instead of spelling subjects itself, so renaming one
is one edit and a grep shows every producer and consumer.
"""

from typing import Final

# Inference: edge -> router request/reply. One subject per operation so a router
# replica could, later, serve only some operations.
INFER_PREFIX: Final = "sb.infer"
INFER_CHAT: Final = f"{INFER_PREFIX}.chat"
INFER_EMBEDDINGS: Final = f"{INFER_PREFIX}.embeddings"
# Images, audio, moderation and the utility endpoints (translations, rerank, ...).
INFER_MODALITY: Final = f"{INFER_PREFIX}.modality"

# Catalog queries: edge -> router request/reply.
CATALOG_LIST: Final = "sb.catalog.list"
CATALOG_GET: Final = "sb.catalog.get"
HEALTH_PROVIDERS: Final = "sb.health.providers"
CACHE_PURGE: Final = "sb.cache.purge"
# Edge -> every router (no queue group): the client of the stream answering on this inbox left.
STREAM_CANCEL: Final = "sb.stream.cancel"  # edge -> router request/reply (DELETE /v1/cache)

# Ledger queries: edge -> ledger request/reply.
LEDGER_GENERATION: Final = "sb.ledger.generation"
LEDGER_REPORT: Final = "sb.ledger.report"
LEDGER_ADMIN: Final = "sb.ledger.admin"  # sub-accounts and management keys
LEDGER_SNAPSHOT: Final = "sb.ledger.snapshot"  # jobs -> ledger: one request's snapshot, for a replay

# Evals and replays: edge -> jobs request/reply (bus/jobs.py), and the JOBS work queue
# the jobs replicas pull runs from.
JOBS_API: Final = "sb.jobs.api"
JOBS_WORK_PREFIX: Final = "sb.jobs.work"
JOBS_WORK_EVAL: Final = f"{JOBS_WORK_PREFIX}.eval"
JOBS_WORK_REPLAY: Final = f"{JOBS_WORK_PREFIX}.replay"
JOBS_CONSUMER: Final = "jobs"

# Queue groups: replicas in one group share the subject's load.
ROUTER_QUEUE: Final = "router"
LEDGER_QUEUE: Final = "ledger"
JOBS_QUEUE: Final = "jobs"

# KV buckets.
KV_API_KEYS: Final = "sb_api_keys"
KV_SUBACCOUNTS: Final = "sb_subaccounts"
KV_SPEND: Final = "sb_spend"
KV_BUDGETS: Final = "sb_budgets"
KV_WALLETS: Final = "sb_wallets"
KV_LEDGER_STATE: Final = "sb_ledger_state"
KV_PROVIDER_HEALTH: Final = "sb_provider_health"
KV_RESPONSE_CACHE: Final = "sb_response_cache"
KV_EVALS: Final = "sb_evals"  # <account>.<eval id> -> EvalView (http/evals.py)
KV_REPLAYS: Final = "sb_replays"  # <account>.<replay id> -> ReplayView (http/replays.py)
KV_EVAL_WINNERS: Final = "sb_eval_winners"  # <eval id> -> EvalWinner (bus/jobs.py), mirrored by routers

# JetStream streams and their subjects (definitions in libs/contracts/streams.py).
STREAM_USAGE: Final = "USAGE"
USAGE_EVENTS: Final = "sb.usage.events"
EVENTS_PREFIX: Final = "sb.events"  # + ".<event type>", e.g. sb.events.subaccount.created
LEDGER_CONSUMER: Final = "ledger"
STREAM_JOBS: Final = "JOBS"
STREAM_EVENTS: Final = "EVENTS"

# Rate limiting: every edge replica publishes its per-key counter deltas here and
# subscribes without a queue group, since each replica needs every report.
RATE_SYNC: Final = "sb.ratelimit.sync"
