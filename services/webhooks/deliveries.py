"""Delivery records (KV sb_webhook_deliveries, `<account>.<delivery id>`): the public
view of one event to one target, plus the task that re-queues it on a redeliver.

Fan-out writes each pending record and tells the task's message which revision it got
(header RECORD_HEADER, with the record's one timestamp): the pending record is a pure
function of the task and that timestamp, so a first attempt can write its attempt count
by revision straight away instead of reading the record back first. A stale header (a
retry, a redeliver) only makes that write fail its revision check, and the record is read.
"""

import hashlib
import time
from collections.abc import Mapping
from typing import Final

import msgspec

from libs.contracts.bus.webhooks import DeliveryTask
from libs.contracts.http.webhooks import DeliveryView


class StoredDelivery(msgspec.Struct, kw_only=True):
    view: DeliveryView
    task: DeliveryTask


decode_stored = msgspec.json.Decoder(StoredDelivery).decode
RECORD_HEADER: Final = "Sb-Delivery-Record"  # "<revision> <created_at>" of the pending record fan-out wrote


def delivery_id(event_id: str, target: str) -> str:
    """The same for an event and a target however often it is fanned out or retried."""
    return "dlv_" + hashlib.sha256(f"{event_id}\n{target}".encode()).hexdigest()[:32]


def pending(task: DeliveryTask, now: float | None = None) -> StoredDelivery:
    now = time.time() if now is None else now
    view = DeliveryView(id=task.delivery_id, event_id=task.event_id, event_type=task.event_type, url=task.url,
                        status="pending", attempts=0, created_at=now, updated_at=now, endpoint_id=task.endpoint_id,
                        job_id=task.job_id, sub_account_id=task.subaccount_id, next_attempt_at=now)
    return StoredDelivery(view=view, task=task)


def record_header(stored: StoredDelivery, revision: int) -> str:
    # repr() of a float reads back as the same float: the rebuilt record is byte for byte the stored one.
    return f"{revision} {stored.view.created_at!r}"


def known_record(task: DeliveryTask, headers: Mapping[str, str] | None) -> tuple[StoredDelivery, int] | None:
    """The pending record fan-out wrote for this task and its revision, if the message says."""
    value = (headers or {}).get(RECORD_HEADER)
    if not value:
        return None
    try:
        revision, created_at = value.split(" ")
        return pending(task, float(created_at)), int(revision)
    except ValueError:
        return None
