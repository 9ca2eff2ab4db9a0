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
LEDGER_RECENT: Final = "sb.ledger.recent"  # edge -> ledger: the newest requests with their cost (bus/ledger.py)
# Edge -> ledger: lease a slice of a spend cap or prepaid balance, renew it, return it (bus/ledger.py).
LEDGER_LEASE: Final = "sb.ledger.lease"

# Long-running generations (video, music, 3D): jobs -> router request/reply (bus/longrun.py).
# The router owns every provider call: submit, poll, fetch the result, cancel.
INFER_LONGRUN: Final = f"{INFER_PREFIX}.longrun"

# Async work: edge -> jobs request/reply (bus/jobs.py), and the JOBS work queue the jobs
# replicas pull from. Two consumers with disjoint filters (a work queue requires it):
# `runs` for work that runs to its end once (evals, replays, batches, chat with webhook_url),
# `polls` for generations, whose message comes back (NAK with delay) each time the provider
# is to be polled again, so waiting holds no worker slot.
JOBS_API: Final = "sb.jobs.api"
JOBS_WORK_PREFIX: Final = "sb.jobs.work"
JOBS_RUNS_PREFIX: Final = f"{JOBS_WORK_PREFIX}.run"
JOBS_WORK_EVAL: Final = f"{JOBS_RUNS_PREFIX}.eval"
JOBS_WORK_REPLAY: Final = f"{JOBS_RUNS_PREFIX}.replay"
JOBS_WORK_BATCH: Final = f"{JOBS_RUNS_PREFIX}.batch"
JOBS_WORK_CHAT: Final = f"{JOBS_RUNS_PREFIX}.chat"  # chat completion with webhook_url
JOBS_POLLS_PREFIX: Final = f"{JOBS_WORK_PREFIX}.poll"
JOBS_WORK_GENERATION: Final = f"{JOBS_POLLS_PREFIX}.generation"
JOBS_CONSUMER: Final = "jobs-runs"
JOBS_POLL_CONSUMER: Final = "jobs-polls"
JOBS_LEGACY_CONSUMER: Final = "jobs"  # filtered sb.jobs.work.>, which overlaps both: deleted at start

# Webhooks: edge -> webhooks request/reply (endpoints, deliveries, signing secret), and the
# WEBHOOKS work queue of single deliveries (one message per event x target, retried by NAK).
WEBHOOKS_API: Final = "sb.webhooks.api"
WEBHOOKS_DELIVER_PREFIX: Final = "sb.webhooks.deliver"
WEBHOOKS_FANOUT_CONSUMER: Final = "webhooks-fanout"  # on EVENTS
WEBHOOKS_DELIVERY_CONSUMER: Final = "webhooks-deliveries"  # on WEBHOOKS
WEBHOOKS_QUEUE: Final = "webhooks"

# Queue groups: replicas in one group share the subject's load.
ROUTER_QUEUE: Final = "router"
# The edge reads KV and the Object Store directly for files; everything else is a service's.
LEDGER_QUEUE: Final = "ledger"
JOBS_QUEUE: Final = "jobs"

# KV buckets.
KV_API_KEYS: Final = "sb_api_keys"
KV_SUBACCOUNTS: Final = "sb_subaccounts"
KV_SPEND: Final = "sb_spend"
KV_BUDGETS: Final = "sb_budgets"
KV_WALLETS: Final = "sb_wallets"
KV_LEDGER_STATE: Final = "sb_ledger_state"
KV_SPEND_LEASES: Final = "sb_spend_leases"  # sub.<sub-account> | wallet.<account> -> LeaseBook (bus/ledger.py)
KV_PROVIDER_HEALTH: Final = "sb_provider_health"
KV_RESPONSE_CACHE: Final = "sb_response_cache"
KV_EVALS: Final = "sb_evals"  # <account>.<eval id> -> EvalView (http/evals.py)
KV_REPLAYS: Final = "sb_replays"  # <account>.<replay id> -> ReplayView (http/replays.py)
KV_EVAL_WINNERS: Final = "sb_eval_winners"  # <eval id> -> EvalWinner (bus/jobs.py), mirrored by routers
KV_JOBS: Final = "sb_jobs"  # <account>.<job id> -> JobRecord (http/jobs.py)
KV_BATCHES: Final = "sb_batches"  # <account>.<batch id> -> BatchRecord (http/batches.py)
KV_BATCH_LINES: Final = "sb_batch_lines"  # <batch id>.<line index> -> a finished line's output, for resumption
KV_FILES: Final = "sb_files"  # <account>.<file id> -> FileRecord (contracts/files.py)
KV_IDEMPOTENCY: Final = "sb_idempotency"  # sha256(account, key id, path, Idempotency-Key) -> stored answer, 24 h
KV_GATEWAY_SECRETS: Final = "sb_gateway_secrets"  # "url_signing" -> the key signed file URLs are minted with
KV_WEBHOOK_ENDPOINTS: Final = "sb_webhook_endpoints"  # <account>.<endpoint id> -> an account endpoint
KV_WEBHOOK_SECRETS: Final = "sb_webhook_secrets"  # <account> -> signing secret(s)
KV_WEBHOOK_DELIVERIES: Final = "sb_webhook_deliveries"  # <account>.<delivery id> -> a delivery record
KV_WEBHOOK_STATUS: Final = "sb_webhook_status"  # <account>.<job id> -> WebhookStatus (bus/webhooks.py)

# Object Store bucket: uploaded files, batch outputs and job results (contracts/files.py names them).
OBJ_FILES: Final = "sb_blobs"

# JetStream streams and their subjects (definitions in libs/contracts/streams.py).
STREAM_USAGE: Final = "USAGE"
USAGE_EVENTS: Final = "sb.usage.events"
EVENTS_PREFIX: Final = "sb.events"  # + ".<event type>", e.g. sb.events.subaccount.created
LEDGER_CONSUMER: Final = "ledger"
STREAM_JOBS: Final = "JOBS"
STREAM_EVENTS: Final = "EVENTS"
STREAM_WEBHOOKS: Final = "WEBHOOKS"

# Rate limiting: every edge replica publishes its per-key counter deltas here and
# subscribes without a queue group, since each replica needs every report.
RATE_SYNC: Final = "sb.ratelimit.sync"
# MCP over legacy SSE: edge -> the edge worker holding session <id>'s stream, request/reply (bus/mcp.py).
MCP_SSE_PREFIX: Final = "sb.mcp.sse"
