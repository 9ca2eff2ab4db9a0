"""Public bodies of /v1/sub-accounts and /v1/management/keys.

Create bodies follow the contract (name, spend_cap_cents, external_ref,
rate_limit_rpm, default_tag) plus our extensions (rate_limit_tpm, metadata).
Update bodies are partial: a field left out is unchanged, `null` clears it.
"""

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Cents = Annotated[int, msgspec.Meta(ge=0)]
PerMinute = Annotated[int, msgspec.Meta(ge=1)]
Scope = Literal["inference", "read-usage", "admin"]
Metadata = Annotated[dict[str, str], msgspec.Meta(max_length=50)]


class SubAccountCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    spend_cap_cents: Cents
    external_ref: str | None = None
    rate_limit_rpm: PerMinute | None = None
    rate_limit_tpm: PerMinute | None = None
    default_tag: Tag | None = None
    metadata: Metadata | None = None
    snapshots: bool = True  # ours: False keeps this customer's requests out of the replay store


class SubAccountUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    spend_cap_cents: Cents | UnsetType = UNSET
    external_ref: str | UnsetType | None = UNSET
    rate_limit_rpm: PerMinute | UnsetType | None = UNSET
    rate_limit_tpm: PerMinute | UnsetType | None = UNSET
    default_tag: Tag | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET
    snapshots: bool | UnsetType = UNSET


class SubAccountView(msgspec.Struct):
    id: str
    name: str
    spend_cap_cents: int
    external_ref: str | None
    rate_limit_rpm: int | None
    rate_limit_tpm: int | None
    default_tag: str | None
    metadata: dict[str, str]
    created: int
    key_id: str | None
    spent_cents_this_month: float
    snapshots: bool = True
    key: str | None = None  # the plaintext key: only in the create and rotate answers
    object: str = "sub_account"


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["inference"])
    expires_at: int | None = None  # unix seconds


class KeyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] | UnsetType = UNSET
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)] | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET
    expires_at: int | UnsetType | None = UNSET


class KeyView(msgspec.Struct):
    id: str
    name: str
    scopes: list[str]
    disabled: bool
    expires_at: int | None
    created: int
    sub_account_id: str | None
    key: str | None = None  # plaintext: only in the create answer
    object: str = "api_key"


class BudgetCreate(msgspec.Struct, forbid_unknown_fields=True):
    tag: Tag
    cap_cents: Annotated[int, msgspec.Meta(ge=1)]
    # Extension: alert at these percentages of the cap (default 50, 80, 100).
    alert_thresholds: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=1000)]],
                                msgspec.Meta(min_length=1, max_length=10)] | None = None


class BudgetView(msgspec.Struct):
    id: str
    tag: str
    cap_cents: int
    alert_thresholds: list[int]
    spent_cents_this_month: float
    created: int
    object: str = "budget"


class TopUp(msgspec.Struct, forbid_unknown_fields=True):
    cents: Annotated[int, msgspec.Meta(ge=1)]
    low_balance_cents: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Balance(msgspec.Struct):
    cents: int
    usd: float
    credited_cents: int
    low_balance_cents: int
    exhausted: bool
    object: str = "balance"


class ListOf(msgspec.Struct):
    data: list[msgspec.Struct]  # SubAccountView, KeyView or BudgetView
    object: str = "list"


class Deleted(msgspec.Struct):
    id: str
    object: str
    deleted: bool = True
