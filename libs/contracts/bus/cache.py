"""Response cache: the `x-cache` modes, the headers, and the edge -> router purge call
(msgpack on the bus; answered with PurgeResult, or a bus.inference.Failure on error)."""

from typing import Final, Literal

import msgspec

from libs.contracts.bus.inference import Failure

# Request header `x-cache`: auto (cache only deterministic requests), force (cache
# whatever the request), skip (neither read nor write the cache).
CacheMode = Literal["auto", "force", "skip"]
CACHE_MODES: Final[tuple[CacheMode, ...]] = ("auto", "force", "skip")
DEFAULT_CACHE_MODE: Final[CacheMode] = "auto"

CACHE_HEADER: Final = "x-cache"
CACHE_STATUS_HEADER: Final = "X-Cache-Status"
CACHE_STATUS_HIT: Final = "hit; type=exact"
CACHE_STATUS_MISS: Final = "miss; type=exact"


class PurgeRequest(msgspec.Struct, array_like=True):
    account_id: str


class PurgeResult(msgspec.Struct, tag="purged", array_like=True):
    """Tagged so the edge can decode the router's answer as `PurgeResult | Failure`."""

    deleted: int  # cache entries removed


encode = msgspec.msgpack.Encoder().encode
decode_purge_request = msgspec.msgpack.Decoder(PurgeRequest).decode
decode_purge_reply = msgspec.msgpack.Decoder(PurgeResult | Failure).decode
