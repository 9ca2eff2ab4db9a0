"""Edge -> ledger queries (request/reply, answered with bus.inference.Reply/Failure
carrying the public JSON body)."""

import msgspec

from libs.contracts.bus.inference import Principal
from libs.contracts.bus.snapshots import Snapshot
from libs.contracts.bus.usage import ReportQuery, UsageEvent


class GenerationQuery(msgspec.Struct, array_like=True):
    account_id: str
    request_id: str
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


ADMIN_OPS = (
    "subaccount.create", "subaccount.list", "subaccount.get", "subaccount.update", "subaccount.delete",
    "subaccount.rotate", "key.create", "key.list", "key.get", "key.update", "key.delete",
    "budget.create", "budget.list", "budget.delete", "balance.get", "balance.topup",
)

encode = msgspec.msgpack.Encoder().encode
decode_admin = msgspec.msgpack.Decoder(AdminRequest).decode
decode_generation_query = msgspec.msgpack.Decoder(GenerationQuery).decode
decode_report_query = msgspec.msgpack.Decoder(ReportQuery).decode
decode_snapshot_query = msgspec.msgpack.Decoder(SnapshotQuery).decode
decode_snapshot_answer = msgspec.msgpack.Decoder(SnapshotAnswer).decode
