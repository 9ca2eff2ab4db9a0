"""Webhook bus messages: edge -> webhooks API calls, single deliveries on the WEBHOOKS
work queue, and the per-job delivery outcome the jobs API reads back."""

from typing import Final

import msgspec

from libs.contracts.bus.inference import Principal


class WebhooksCall(msgspec.Struct, array_like=True, kw_only=True):
    """One /v1/webhooks/* or /v1/webhook-secret* call, authenticated at the edge."""

    op: str
    principal: Principal
    target_id: str | None = None
    body: bytes = b""
    query: dict[str, str] = {}


class WebhookStatus(msgspec.Struct, kw_only=True):
    """KV sb_webhook_status, key `<account>.<job id>`: what became of the job's webhook_url delivery.
    Written by the webhooks service; read by the jobs API to fill `webhook_delivered`."""

    delivery_id: str
    delivered: bool | None = None  # None while retries remain
    attempts: int = 0
    last_status: int | None = None  # the receiver's last HTTP status, if it answered


WEBHOOK_STATUS_PENDING: Final = None

encode = msgspec.msgpack.Encoder().encode
decode_call = msgspec.msgpack.Decoder(WebhooksCall).decode
encode_status = msgspec.json.Encoder().encode
decode_status = msgspec.json.Decoder(WebhookStatus).decode


# WebhooksCall.op values.
OP_ENDPOINT_CREATE: Final = "endpoint.create"
OP_ENDPOINT_LIST: Final = "endpoint.list"
OP_ENDPOINT_GET: Final = "endpoint.get"
OP_ENDPOINT_UPDATE: Final = "endpoint.update"
OP_ENDPOINT_DELETE: Final = "endpoint.delete"
OP_DELIVERY_LIST: Final = "delivery.list"
OP_DELIVERY_GET: Final = "delivery.get"
OP_DELIVERY_REDELIVER: Final = "delivery.redeliver"
OP_SECRET_GET: Final = "secret.get"
OP_SECRET_ROTATE: Final = "secret.rotate"


class DeliveryTask(msgspec.Struct, array_like=True, kw_only=True):
    """One event for one target on the WEBHOOKS work queue (`sb.webhooks.deliver.<account>`).

    `body` is the WebhookPayload JSON, encoded once at fan-out: the bytes signed and sent
    on every attempt. `round` counts redeliveries asked for through the API; a task from an
    older round than its delivery record is stale and dropped."""

    delivery_id: str
    account_id: str
    event_id: str
    event_type: str
    url: str
    body: bytes
    endpoint_id: str | None = None
    job_id: str | None = None
    subaccount_id: str | None = None
    round: int = 0
    traceparent: str | None = None  # the event's: each attempt is a CLIENT span in that trace


encode_task = msgspec.msgpack.Encoder().encode
decode_task = msgspec.msgpack.Decoder(DeliveryTask).decode
