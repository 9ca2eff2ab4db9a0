"""Public bodies of /v1/webhooks/* and /v1/webhook-secret: endpoints an account
registers, the record of every delivery, and the signing secret.

Endpoints belong to the account; `sub_account_id` narrows one to a single
sub-account's events. An empty `event_types` means every event type.
"""

from typing import Annotated, Final, Literal

import msgspec

DeliveryStatus = Literal["pending", "delivered", "failed"]
DELIVERY_STATUSES: Final = ("pending", "delivered", "failed")
MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_LIST = 100
DEFAULT_LIST = 20

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL)]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]
SubAccountId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class EndpointCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: Annotated[list[EventType], msgspec.Meta(max_length=50)] = []
    description: Description = ""
    disabled: bool = False
    sub_account_id: SubAccountId | None = None


class EndpointUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PATCH: only the fields sent change (`sub_account_id: null` widens back to the whole account)."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    event_types: Annotated[list[EventType], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    sub_account_id: SubAccountId | msgspec.UnsetType | None = msgspec.UNSET


class EndpointView(msgspec.Struct, kw_only=True):
    """KV sb_webhook_endpoints, key `<account>.<endpoint id>`, and the public answer."""

    id: str  # we_...
    url: str
    event_types: list[str]
    description: str
    disabled: bool
    created_at: int
    updated_at: int
    object: str = "webhook_endpoint"
    sub_account_id: str | None = None
    # Why the gateway disabled it itself (the receiver answered 410 Gone); None when a user did.
    disabled_reason: str | None = None


class EndpointList(msgspec.Struct):
    data: list[EndpointView]
    object: str = "list"


class DeliveryView(msgspec.Struct, kw_only=True):
    """One event to one target, across all its attempts (KV sb_webhook_deliveries, `<account>.<id>`)."""

    id: str  # dlv_...: derived from (event id, target), so the same across retries and re-fan-outs
    event_id: str
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    created_at: float  # unix seconds
    updated_at: float
    object: str = "webhook_delivery"
    endpoint_id: str | None = None  # None for a job's own webhook_url
    job_id: str | None = None
    sub_account_id: str | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    next_attempt_at: float | None = None


class DeliveryList(msgspec.Struct):
    data: list[DeliveryView]
    has_more: bool
    object: str = "list"


class SecretView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """GET /v1/webhook-secret and POST /v1/webhook-secret/rotate.

    `secret` is `whsec_<base64>`: x-aig-signature is keyed by the whole string (as
    Stripe's are), webhook-signature (Standard Webhooks) by the base64-decoded bytes."""

    secret: str
    created_at: int
    object: str = "webhook_secret"
    # Until then the previous secret still signs every delivery too (a second signature).
    previous_expires_at: int | None = None


class Deleted(msgspec.Struct):
    id: str
    object: str = "webhook_endpoint"
    deleted: bool = True
