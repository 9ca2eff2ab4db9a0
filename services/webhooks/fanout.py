"""Fan-out: one event from EVENTS becomes one delivery task per target on WEBHOOKS.

Targets are the event's own `webhook_url` (a job's callback) and the account's enabled
endpoints whose filters match (event type; sub-account, for an endpoint narrowed to
one; registered no later than the event occurred). Each task's message id is its
delivery id, and its record is created only if absent, so an event fanned out twice
(a replica died before acknowledging it) is delivered once.
"""

import asyncio

import msgspec
import structlog
from nats.aio.msg import Msg

from libs.contracts import subjects
from libs.contracts.bus import events
from libs.contracts.bus.webhooks import DeliveryTask, encode_task
from libs.contracts.http.webhooks import EndpointView
from libs.contracts.ids import valid_id
from libs.runtime.kv_mirror import KvMirror
from services.webhooks.acked_publish import AckedPublisher
from services.webhooks.deliveries import RECORD_HEADER, StoredDelivery, delivery_id, pending, record_header
from services.webhooks.records import Records

log = structlog.get_logger()
_encode_payload = msgspec.json.Encoder().encode


def matches(endpoint: EndpointView, event: events.Event) -> bool:
    return (not endpoint.disabled
            and (not endpoint.event_types or event.type in endpoint.event_types)
            and (endpoint.sub_account_id is None or endpoint.sub_account_id == event.subaccount_id)
            and endpoint.created_at <= event.occurred_at)


def tasks_for(event: events.Event, endpoints: dict[str, EndpointView]) -> list[DeliveryTask]:
    body = _encode_payload(events.WebhookPayload(event.id, event.type, event.occurred_at, event.data))
    common = {"account_id": event.account_id, "event_id": event.id, "event_type": event.type, "body": body,
              "subaccount_id": event.subaccount_id, "traceparent": event.traceparent}
    tasks: list[DeliveryTask] = []
    if event.webhook_url:
        tasks.append(DeliveryTask(delivery_id=delivery_id(event.id, f"url:{event.webhook_url}"),
                                  url=event.webhook_url, job_id=event.job_id, **common))
    prefix = f"{event.account_id}."
    for key, endpoint in sorted(endpoints.items()):
        if key.startswith(prefix) and matches(endpoint, event):
            tasks.append(DeliveryTask(delivery_id=delivery_id(event.id, f"endpoint:{endpoint.id}"),
                                      url=endpoint.url, endpoint_id=endpoint.id, **common))
    return tasks


class Fanout:
    def __init__(self, publisher: AckedPublisher, endpoints: KvMirror[EndpointView],
                 deliveries: Records[StoredDelivery]) -> None:
        self._publisher = publisher
        self._endpoints = endpoints
        self._deliveries = deliveries

    async def handle(self, msg: Msg) -> None:
        try:
            event = events.decode(msg.data)
        except msgspec.DecodeError:
            log.error("webhooks_bad_event", subject=msg.subject)
            await msg.term()
            return
        if not valid_id(event.account_id) or not valid_id(event.id):
            log.error("webhooks_bad_event_ids", event_id=event.id[:80], account_id=event.account_id[:80])
            await msg.term()
            return
        # An event's targets are independent: their round trips overlap (most events have one, which
        # needs no task of its own). Acknowledged only once all are queued; a failure leaves the event
        # to be fanned out again, which the ids make harmless.
        tasks = tasks_for(event, self._endpoints.entries)
        if len(tasks) == 1:
            await self.enqueue(tasks[0], fresh=True)
        elif tasks:
            await asyncio.gather(*(self.enqueue(task, fresh=True) for task in tasks))
        await msg.ack()

    async def enqueue(self, task: DeliveryTask, fresh: bool) -> None:
        """Queue one task; `fresh` creates its pending record (kept if it exists: a re-fan-out)."""
        headers = {"Nats-Msg-Id": f"{task.delivery_id}.{task.round}"}
        if fresh:
            record = pending(task)
            revision = await self._deliveries.create(task.account_id, task.delivery_id, record)
            if revision is not None:  # the first attempt can then write without reading it back
                headers[RECORD_HEADER] = record_header(record, revision)
        await self._publisher.publish(f"{subjects.WEBHOOKS_DELIVER_PREFIX}.{task.account_id}", encode_task(task),
                                      headers)
