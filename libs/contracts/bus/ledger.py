"""Edge -> ledger queries (request/reply, answered with bus.inference.Reply/Failure
carrying the public JSON body)."""

from typing import Annotated, Final

import msgspec

from libs.contracts.bus.inference import Principal
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import ReportQuery, UsageEvent


class GenerationQuery(msgspec.Struct, array_like=True):
    account_id: str
    request_id: str
    subaccount_id: str | None = None  # set: the caller is a sub-account and sees only its own


RECENT_MAX: Final = 100  # requests per GET /v1/usage/recent page


class RecentQuery(msgspec.Struct, array_like=True, kw_only=True):
    """The newest requests of an account in [from_ms, to_ms), newest first (GET /v1/usage/recent)."""

    account_id: str
    from_ms: int  # inclusive
    to_ms: int  # exclusive
    limit: Annotated[int, msgspec.Meta(ge=1, le=RECENT_MAX)]
    subaccount_id: str | None = None  # set: the caller is a sub-account and sees only its own


class AdminRequest(msgspec.Struct, array_like=True):
    """A management call, authenticated (admin scope) and body-validated by the edge."""

    op: str  # see ADMIN_OPS
    principal: Principal
    target_id: str | None = None
    body: bytes = b""


class SnapshotQuery(msgspec.Struct, array_like=True):
    """One request's snapshot, for a replay (jobs -> ledger)."""

    account_id: str
    request_id: str
    subaccount_id: str | None = None  # set: the caller is a sub-account and sees only its own


class SnapshotAnswer(msgspec.Struct):
    """The ledger's answer to a SnapshotQuery: the snapshot and the request's usage row."""

    snapshot: Snapshot
    event: UsageEvent | None = None


LEASE_SUB = "sub"  # a sub-account's monthly spend cap
LEASE_WALLET = "wallet"  # an account's prepaid balance


class LeaseRequest(msgspec.Struct, array_like=True, kw_only=True):
    """Edge -> ledger (LEDGER_LEASE): open, top up, renew or return a lease on one budget.

    A lease is a slice of what remains of a cap (or balance) that one edge spends locally,
    reserving each request's worst-case cost and settling it to the real cost. The edge
    reports, each time, what it has settled under the lease so far and what its requests in
    flight hold; the ledger keeps the sum of live leases within what remains."""

    scope: str  # LEASE_SUB | LEASE_WALLET
    owner_id: str  # the sub-account id (LEASE_SUB) or the account id (LEASE_WALLET)
    account_id: str
    edge_id: str
    lease_id: str | None = None  # None: open a new lease
    want_micros: int = 0  # how much more to grant (0: renew only)
    need_micros: int = 0  # the smallest addition that lets a waiting request in (0: none waits)
    spent_micros: int = 0  # real cost settled under this lease so far (cumulative)
    held_micros: int = 0  # reserved by this lease's requests still in flight
    unsure_micros: int = 0  # the part of spent_micros that is reservations of requests whose cost was never seen
    # Give back what the lease holds beyond this (its remnant cannot cover a request); -1: keep it all.
    granted_micros: int = -1
    release: bool = False  # return the lease: nothing more will be admitted under it


class LeaseGrant(msgspec.Struct, array_like=True):
    """The ledger's answer: the lease's cumulative grant and how long it stays valid."""

    lease_id: str | None  # None: no lease (unlimited, or nothing could be granted)
    granted_micros: int = 0  # everything granted under this lease so far (cumulative)
    ttl_s: float = 0.0  # the edge admits nothing under the lease after this long without a renewal
    remaining_micros: int = 0  # what is left beyond every live lease, after this grant
    unlimited: bool = False  # no cap or no wallet: the edge stops leasing this budget
    refusal: str | None = None  # the budget cannot cover `need_micros`: the 402 message
    error: str | None = None  # the request was malformed


ADMIN_OPS = (
    "subaccount.create", "subaccount.list", "subaccount.get", "subaccount.update", "subaccount.delete",
    "subaccount.rotate", "key.create", "key.list", "key.get", "key.update", "key.delete",
    "budget.create", "budget.list", "budget.delete", "balance.get", "balance.topup",
)

encode = msgspec.msgpack.Encoder().encode
decode_admin = msgspec.msgpack.Decoder(AdminRequest).decode
decode_generation_query = msgspec.msgpack.Decoder(GenerationQuery).decode
decode_recent_query = msgspec.msgpack.Decoder(RecentQuery).decode
decode_report_query = msgspec.msgpack.Decoder(ReportQuery).decode
decode_snapshot_query = msgspec.msgpack.Decoder(SnapshotQuery).decode
decode_snapshot_answer = msgspec.msgpack.Decoder(SnapshotAnswer).decode
decode_lease_request = msgspec.msgpack.Decoder(LeaseRequest).decode
decode_lease_grant = msgspec.msgpack.Decoder(LeaseGrant).decode
