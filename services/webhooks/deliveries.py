"""Delivery records (KV sb_webhook_deliveries, `<account>.<delivery id>`): the public
view of one event to one target, plus the task that re-queues it on a redeliver."""

import hashlib
import time

import msgspec

from libs.contracts.bus.webhooks import DeliveryTask
from libs.contracts.http.webhooks import DeliveryView


class StoredDelivery(msgspec.Struct, kw_only=True):
    view: DeliveryView
    task: DeliveryTask


decode_stored = msgspec.json.Decoder(StoredDelivery).decode


def delivery_id(event_id: str, target: str) -> str:
    """The same for an event and a target however often it is fanned out or retried."""
    return "dlv_" + hashlib.sha256(f"{event_id}\n{target}".encode()).hexdigest()[:32]


def pending(task: DeliveryTask) -> StoredDelivery:
    now = time.time()
    view = DeliveryView(id=task.delivery_id, event_id=task.event_id, event_type=task.event_type, url=task.url,
                        status="pending", attempts=0, created_at=now, updated_at=now, endpoint_id=task.endpoint_id,
                        job_id=task.job_id, sub_account_id=task.subaccount_id, next_attempt_at=now)
    return StoredDelivery(view=view, task=task)
