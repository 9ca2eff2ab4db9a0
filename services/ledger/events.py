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

    async def emit(self, type_: str, account_id: str, data: dict[str, Any], event_id: str | None = None) -> None:
        """Publish one event; `event_id` makes a retried emission idempotent (stream dedup window)."""
        event = events.Event(id=event_id or f"evt_{secrets.token_hex(12)}", type=type_,
                             occurred_at=int(time.time()), account_id=account_id, data=data)
        try:
            await self._js.publish(f"{subjects.EVENTS_PREFIX}.{type_}", events.encode(event),
                                   headers={"Nats-Msg-Id": event.id}, timeout=5)
        except Exception as exc:  # an event must never fail the operation that caused it
            log.error("event_publish_failed", type=type_, event_id=event.id, error=repr(exc))
