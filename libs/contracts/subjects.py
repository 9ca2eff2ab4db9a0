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

# Catalog queries: edge -> router request/reply.
CATALOG_LIST: Final = "sb.catalog.list"
CATALOG_GET: Final = "sb.catalog.get"

# Queue groups: replicas in one group share the subject's load.
ROUTER_QUEUE: Final = "router"

# KV buckets.
KV_API_KEYS: Final = "sb_api_keys"

# JetStream streams (filled by later issues: usage, jobs, events).
STREAM_USAGE: Final = "USAGE"
STREAM_JOBS: Final = "JOBS"
STREAM_EVENTS: Final = "EVENTS"
