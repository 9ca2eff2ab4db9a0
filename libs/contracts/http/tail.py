"""`GET /v1/requests/tail`: the server-sent stream of an account's requests as they complete.

The stream is `text/event-stream`. It opens with one `ready` event (the subscription is in
place: requests finishing from now on are delivered), then one `generation` event per
finished request, whose data is the same Generation object GET /v1/generations answers
(http/usage.py). A client too slow to read gets a `dropped` event saying how many requests
it missed instead of an ever-growing buffer at the edge. A comment line (`: keep-alive`)
is sent after KEEPALIVE_S without anything else, so idle proxies keep the connection open
and a client can tell a quiet stream from a dead one.
"""

from typing import Final, Literal

import msgspec

PATH: Final = "/v1/requests/tail"
EVENT_READY: Final = "ready"
EVENT_GENERATION: Final = "generation"
EVENT_DROPPED: Final = "dropped"
KEEPALIVE_S: Final = 15.0  # the longest the stream stays silent


class TailReady(msgspec.Struct, kw_only=True):
    account_id: str
    sub_account_id: str | None = None  # the `sub_account` filter, when one was given
    object: Literal["tail.ready"] = "tail.ready"


class TailDropped(msgspec.Struct, kw_only=True):
    count: int  # requests not delivered since the last event, because the client read too slowly
    object: Literal["tail.dropped"] = "tail.dropped"
