"""Typed pages for the list answers whose Struct holds `list[Any]` or `list[msgspec.Struct]`
(accounts.ListOf, jobs.CursorList), so the OpenAPI document can say what each list holds.
Same fields and order as what the services encode; and the cache purge's answer."""

from typing import Literal

import msgspec

from libs.contracts.http.accounts import BudgetView, KeyView, SubAccountView
from libs.contracts.http.evals import EvalView
from libs.contracts.http.jobs import Job, Video
from libs.contracts.http.replays import ReplayView


class SubAccountList(msgspec.Struct):
    data: list[SubAccountView]
    object: str = "list"


class KeyList(msgspec.Struct):
    data: list[KeyView]
    object: str = "list"


class BudgetList(msgspec.Struct):
    data: list[BudgetView]
    object: str = "list"


class EvalList(msgspec.Struct):
    data: list[EvalView]
    object: str = "list"


class ReplayList(msgspec.Struct):
    data: list[ReplayView]
    object: str = "list"


class JobList(msgspec.Struct, kw_only=True):
    data: list[Job]
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VideoList(msgspec.Struct, kw_only=True):
    data: list[Video]
    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class CachePurged(msgspec.Struct):
    """DELETE /v1/cache."""

    deleted: int
    object: str = "cache.purge"
