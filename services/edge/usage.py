"""GET /v1/generations and the usage reports: parse and scope the query at the
edge, answer from the ledger over NATS."""

import calendar
import re
from datetime import UTC, datetime

from aiohttp import web

from libs.contracts import errors, subjects
from libs.contracts.bus import ledger as ledger_bus
from libs.contracts.bus.inference import Principal
from libs.contracts.bus.usage import GroupBy, ReportQuery
from libs.contracts.keys import SCOPE_READ_USAGE
from services.edge.errors import REQUEST_ID, GatewayError
from services.edge.relay import reply_response, request_reply
from services.edge.state import EDGE, EdgeState

_LEDGER_TIMEOUT_S = 10.0
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_BUCKETS = ("hour", "day", "month")
_GROUPS = ("none", "tag", "model", "provider")  # ?group_by= of /v1/usage and /v1/sub-accounts/{id}/usage
_RECENT_DEFAULT = 20
_MAX_INSTANT_S = 253402300800  # 10000-01-01, past which no calendar here goes


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, errors.INVALID_REQUEST, message, param=param)


def _month_bounds(year: int, month: int) -> tuple[int, int]:
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return start * 1000, calendar.timegm((next_year, next_month, 1, 0, 0, 0)) * 1000


def _instant(value: str, param: str) -> int:
    """Unix ms from unix seconds or ISO 8601 (date or datetime; UTC unless it says otherwise)."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # inf, nan and 1e300 are floats too, but no instant (and round(inf) raises)
        if not -_MAX_INSTANT_S <= seconds <= _MAX_INSTANT_S:
            raise _bad(f"'{param}' must be unix seconds or ISO 8601, got '{value}'.", param)
        return round(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"'{param}' must be unix seconds or ISO 8601, got '{value}'.", param) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def time_range(query: "web.MultiDictProxy[str]", now: datetime | None = None) -> tuple[int, int]:
    """The contract's `month=YYYY-MM`, or our `from`/`to`; the current month by default."""
    month = query.get("month")
    if month is not None:
        match = _MONTH.match(month)
        # Year 0 and December 9999 have no month around them in Python's calendar.
        if not match or not 1 <= int(match.group(2)) <= 12 or not "0001-01" <= month <= "9999-11":
            raise _bad(f"'month' must look like 2026-04, got '{month}'.", "month")
        return _month_bounds(int(match.group(1)), int(match.group(2)))
    now = now or datetime.now(UTC)
    default_start, default_end = _month_bounds(now.year, now.month)
    start = _instant(query["from"], "from") if "from" in query else default_start
    end = _instant(query["to"], "to") if "to" in query else default_end
    if start >= end:
        raise _bad("'from' must be before 'to'.", "from")
    return start, end


def _report_query(request: web.Request, principal: Principal, group_by: GroupBy,
                  subaccount_id: str | None = None) -> ReportQuery:
    bucket = request.query.get("bucket")
    if bucket is not None and bucket not in _BUCKETS:
        raise _bad(f"'bucket' must be one of {', '.join(_BUCKETS)}.", "bucket")
    start, end = time_range(request.query)
    return ReportQuery(
        account_id=principal.account_id, from_ms=start, to_ms=end, group_by=group_by, bucket=bucket,  # type: ignore[arg-type]
        # A sub-account key only ever sees its own traffic, whatever it asks for.
        subaccount_id=principal.subaccount_id or subaccount_id,
        model=request.query.get("model"), provider=request.query.get("provider"), tag=request.query.get("tag"),
    )


def _principal(request: web.Request) -> Principal:
    state: EdgeState = request.app[EDGE]
    return state.keys.check(request.headers, SCOPE_READ_USAGE).principal


async def _report(request: web.Request, query: ReportQuery) -> web.StreamResponse:
    state: EdgeState = request.app[EDGE]
    reply = await request_reply(state.nc, subjects.LEDGER_REPORT, ledger_bus.encode(query), _LEDGER_TIMEOUT_S,
                                unavailable="The usage ledger is not running")
    return reply_response(reply, request[REQUEST_ID])


def _group_by(request: web.Request) -> GroupBy:
    group_by = request.query.get("group_by", "none")
    if group_by not in _GROUPS:
        raise _bad(f"'group_by' must be one of {', '.join(_GROUPS)}.", "group_by")
    return group_by  # type: ignore[return-value]


async def usage_report(request: web.Request) -> web.StreamResponse:
    """GET /v1/usage: the whole account's usage (a sub-account key's: its own), grouped as asked."""
    principal = _principal(request)
    return await _report(request, _report_query(request, principal, _group_by(request)))


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(_RECENT_DEFAULT))
    # The length check first: int() of thousands of digits is slow, then refused with a ValueError.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= ledger_bus.RECENT_MAX):
        raise _bad(f"'limit' must be a whole number from 1 to {ledger_bus.RECENT_MAX}, got '{raw[:40]}'.", "limit")
    return int(raw)


async def recent_requests(request: web.Request) -> web.StreamResponse:
    """GET /v1/usage/recent: the newest requests in the range, each with its cost."""
    principal = _principal(request)
    limit = _limit(request)
    start, end = time_range(request.query)
    state: EdgeState = request.app[EDGE]
    query = ledger_bus.RecentQuery(account_id=principal.account_id, from_ms=start, to_ms=end, limit=limit,
                                   subaccount_id=principal.subaccount_id)
    reply = await request_reply(state.nc, subjects.LEDGER_RECENT, ledger_bus.encode(query), _LEDGER_TIMEOUT_S,
                                unavailable="The usage ledger is not running")
    return reply_response(reply, request[REQUEST_ID])


async def usage_by_tag(request: web.Request) -> web.StreamResponse:
    return await _report(request, _report_query(request, _principal(request), "tag"))


async def usage_by_sub_account(request: web.Request) -> web.StreamResponse:
    return await _report(request, _report_query(request, _principal(request), "subaccount"))


async def generation(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    request_id = request.query.get("id")
    if not request_id:
        raise _bad("Pass the request id as ?id=<X-Request-Id of the response>.", "id")
    state: EdgeState = request.app[EDGE]
    query = ledger_bus.GenerationQuery(principal.account_id, request_id, principal.subaccount_id)
    reply = await request_reply(state.nc, subjects.LEDGER_GENERATION, ledger_bus.encode(query), _LEDGER_TIMEOUT_S,
                                unavailable="The usage ledger is not running")
    return reply_response(reply, request[REQUEST_ID])


async def sub_account_usage(request: web.Request) -> web.StreamResponse:
    """One sub-account's usage: its admin, or the sub-account's own key."""
    principal = _principal(request)
    state: EdgeState = request.app[EDGE]
    subaccount_id = request.match_info["id"]
    allowed = (principal.subaccount_id == subaccount_id if principal.subaccount_id is not None
               else state.tenancy.owns(principal, subaccount_id))
    if not allowed:
        raise GatewayError(404, errors.INVALID_REQUEST, f"No sub-account with id '{subaccount_id}' in this account.",
                           param="id")
    return await _report(request, _report_query(request, principal, _group_by(request), subaccount_id))
