"""The document's `webhooks`: one entry per event type the gateway delivers, with the body
(libs/contracts/http/webhook_events.py) and the headers every delivery carries
(services/webhooks/signing.py)."""

from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec

from libs.contracts.http.webhook_events import DELIVERED

RETRY_SCHEDULE: Final = "0s, 30s, 2m, 10m, 1h, 6h"
# name -> description; every delivery sends all of them.
DELIVERY_HEADERS: Final = {
    "x-aig-signature": "t=<unix seconds>,v1=<hex HMAC-SHA256 over `<t>.<raw body>`, keyed by the secret string of "
                       "GET /v1/webhook-secret>; one v1= per active secret during a rotation.",
    "x-aig-event-type": "The event's type (the body's `type`).",
    "x-aig-delivery-id": "Stable across retries of this event to this endpoint: deduplicate on it.",
    "x-aig-attempt": "1 for the first attempt, then 2, 3, ...",
    "webhook-id": "Standard Webhooks: the delivery id.",
    "webhook-timestamp": "Standard Webhooks: unix seconds of this attempt.",
    "webhook-signature": "Standard Webhooks: v1,<base64 HMAC-SHA256 over `<id>.<timestamp>.<raw body>`> keyed by "
                         "the base64-decoded part of the secret.",
}


def webhook_types() -> Iterator[type[msgspec.Struct]]:
    for bodies in DELIVERED.values():
        yield from bodies


def webhooks(schema_of: Callable[[Any], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for event_type, bodies in DELIVERED.items():
        refs = [schema_of(body) for body in bodies]
        schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
        docs = [(body.__doc__ or "").strip() for body in bodies]
        out[event_type] = {"post": {
            "operationId": "on_" + event_type.replace(".", "_"),
            "summary": f"{event_type} event",
            "description": " ".join(d for d in docs if d) + (" " if any(docs) else "") +
                           "Delivered to each endpoint registered for it (and a job's own webhook_url), signed; "
                           f"a failed delivery is retried on the schedule {RETRY_SCHEDULE}.",
            "parameters": [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                            "description": text} for name, text in DELIVERY_HEADERS.items()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {"2XX": {"description": "Any 2xx counts as delivered."},
                          "410": {"description": "Gone: the gateway disables the endpoint."},
                          "default": {"description": "Anything else is retried."}},
        }}
    return out
