"""Publishing lifecycle events to the EVENTS stream (delivered by the webhooks service)."""

import secrets
import time
from typing import Any

import structlog
from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus import events

log = structlog.get_logger()


class EventPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def emit(self, type_: str, account_id: str, data: dict[str, Any], event_id: str | None = None, *,
                   subaccount_id: str | None = None, webhook_url: str | None = None,
                   job_id: str | None = None, traceparent: str | None = None) -> bool:
        """Publish one event; `event_id` makes a retried emission idempotent (stream dedup window).
        Returns whether JetStream stored it; an event never fails the operation that caused it."""
        event = events.Event(id=event_id or f"evt_{secrets.token_hex(12)}", type=type_,
                             occurred_at=int(time.time()), account_id=account_id, data=data,
                             subaccount_id=subaccount_id, webhook_url=webhook_url, job_id=job_id,
                             traceparent=traceparent)
        try:
            await self._js.publish(f"{subjects.EVENTS_PREFIX}.{type_}", events.encode(event),
                                   headers={"Nats-Msg-Id": event.id}, timeout=5)
        except Exception as exc:
            log.error("event_publish_failed", type=type_, event_id=event.id, error=repr(exc))
            return False
        return True
