"""The webhooks service's metrics: delivery attempts by outcome and event type, and the lag
of its two consumers (fan-out on EVENTS, deliveries on WEBHOOKS)."""

from nats.js import JetStreamContext

from libs.contracts import subjects
from libs.contracts.bus.events import EVENT_TYPES
from libs.runtime.metrics import OTHER, Metrics
from libs.runtime.metrics_buffer import CounterTally

# A delivery record's status after an attempt -> the outcome counted.
_OUTCOMES = {"delivered": "delivered", "pending": "retried", "failed": "failed"}
_EVENT_TYPES = frozenset(EVENT_TYPES)


class WebhooksMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__("webhooks")
        self._deliveries = self.counter(
            "switchboard_webhook_deliveries",
            "Delivery attempts by outcome: delivered (2xx), retried (to be attempted again), failed (given up).",
            ("event_type", "outcome"))
        self._children: dict[tuple[str, str], CounterTally] = {}

    def start(self, js: JetStreamContext) -> None:
        self.watch_consumers(js, ((subjects.STREAM_EVENTS, subjects.WEBHOOKS_FANOUT_CONSUMER),
                                  (subjects.STREAM_WEBHOOKS, subjects.WEBHOOKS_DELIVERY_CONSUMER)))

    def delivery(self, event_type: str, status: str) -> None:
        key = (event_type if event_type in _EVENT_TYPES else OTHER, _OUTCOMES.get(status, OTHER))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._deliveries.labels(*key)
        child.inc()
