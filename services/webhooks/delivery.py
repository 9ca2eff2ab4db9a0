"""One delivery attempt per WEBHOOKS message: sign, POST, record, then ack or NAK.

Retries are JetStream redeliveries: a failed attempt NAKs its message with the next
delay of the schedule (or the receiver's Retry-After on 429/503), so no timer of ours
holds anything. Attempts are counted in the delivery record, not by num_delivered: a
message put back because its receiver is at its concurrency bound is not an attempt.
The record's attempt count is written before the POST, so a replica killed mid-attempt
costs that attempt and the next replica sends attempt n+1 with the same delivery id.

The hot path makes no KV reads: endpoints and secrets come from this replica's KV mirrors,
and a first attempt writes its record by the revision fan-out reported (deliveries.py), so
an attempt costs two KV writes (before and after) and the POST.
"""

import email.utils
import time
from collections.abc import Callable

import aiohttp
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from opentelemetry.trace import SpanKind, Status, StatusCode
from yarl import URL

from libs.contracts.bus import webhooks as bus
from libs.contracts.http.webhooks import DeliveryView, EndpointView
from libs.contracts.ids import valid_id
from libs.runtime.kv_mirror import KvMirror
from libs.runtime.tracing import Tracing
from services.webhooks.deliveries import StoredDelivery, known_record, pending
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.records import Records
from services.webhooks.settings import WebhookSettings
from services.webhooks.signing import delivery_headers
from services.webhooks.signing_keys import SigningKeys
from services.webhooks.slots import TargetSlots, target_of
from services.webhooks.ssrf import Guard, RefusedUrl

log = structlog.get_logger()
_ERROR_CHARS = 300
_URL_MEMO = 4096  # distinct URLs remembered (job callback URLs are unbounded: start over past this)


class UrlFacts(msgspec.Struct, frozen=True):
    """What an attempt needs to know about its URL, worked out once per URL and replica."""

    target: str  # the receiver, as TargetSlots counts it
    refused: str | None  # why the SSRF guard refuses it without DNS, if it does
    parsed: URL | None  # for aiohttp, which then need not parse it again


def retry_after_s(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit() alone admits '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class Outcome(msgspec.Struct, kw_only=True):
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    permanent: bool = False  # refused by the SSRF guard: retrying cannot help


class Deliverer:
    def __init__(self, settings: WebhookSettings, session: aiohttp.ClientSession, guard: Guard,
                 deliveries: Records[StoredDelivery], endpoints: Records[EndpointView],
                 endpoint_mirror: KvMirror[EndpointView], keys: SigningKeys, status_kv: KeyValue,
                 tracing: Tracing | None = None, metrics: WebhooksMetrics | None = None) -> None:
        self._settings = settings
        self._tracing = tracing
        self._metrics = metrics
        self._session = session
        self._guard = guard
        self._deliveries = deliveries
        self._endpoints = endpoints
        self._mirror = endpoint_mirror
        self._keys = keys
        self._status_kv = status_kv
        self._slots = TargetSlots(settings.per_target)
        self._urls: dict[str, UrlFacts] = {}

    def _facts(self, url: str) -> UrlFacts:
        facts = self._urls.get(url)
        if facts is None:
            try:
                self._guard.check_url(url)  # depends on the URL and the fixed allow-list only
                facts = UrlFacts(target=target_of(url), refused=None, parsed=URL(url))
            except RefusedUrl as exc:  # malformed ones too: their own "receiver", never called
                facts = UrlFacts(target=url, refused=str(exc), parsed=None)
            if len(self._urls) >= _URL_MEMO:
                self._urls.clear()
            self._urls[url] = facts
        return facts

    async def handle(self, msg: Msg) -> None:
        try:
            task = bus.decode_task(msg.data)
        except msgspec.DecodeError:
            log.error("webhooks_bad_task", subject=msg.subject)
            await msg.term()
            return
        known = known_record(task, msg.headers)
        url = task.url
        if task.endpoint_id is not None:
            # The mirror follows the endpoints bucket within milliseconds: no KV read per attempt.
            endpoint = self._mirror.entries.get(Records.key(task.account_id, task.endpoint_id))
            if endpoint is None or endpoint.disabled:
                await self._settle(task, "failed", Outcome(error="the endpoint was deleted or disabled"), known)
                await msg.ack()
                return
            url = endpoint.url  # a corrected URL applies to deliveries still pending
        facts = self._facts(url)
        target = facts.target
        if not self._slots.enter(target):
            waited_from = time.monotonic()
            if not await self._slots.wait(target):
                await msg.nak(delay=self._settings.busy_delay_s)  # not an attempt: nothing was written
                return
            # The wait ate into the ack_wait margin an attempt needs (beyond its timeout): past half
            # of it, restart the clock rather than risk a second replica sending this attempt too.
            margin_s = self._settings.ack_wait_s - self._settings.timeout_s
            if time.monotonic() - waited_from > margin_s / 2:
                await msg.in_progress()
        try:
            started = await self._begin(task, url, known)
            outcome = None if started is None else await self._post(task, facts, started[0].view.attempts)
        finally:
            # The slot bounds requests at the receiver: it is free once the receiver has answered.
            self._slots.leave(target)
        if started is None or outcome is None:
            await msg.ack()  # already settled, or superseded by a redeliver
            return
        await self._conclude(msg, task, outcome, started)

    async def _begin(self, task: bus.DeliveryTask, url: str,
                     known: tuple[StoredDelivery, int] | None) -> tuple[StoredDelivery, int] | None:
        """Count the attempt in the record before the POST: a replica killed mid-attempt has spent it."""

        def start(view: DeliveryView) -> DeliveryView:
            return msgspec.structs.replace(view, attempts=view.attempts + 1, url=url, updated_at=time.time(),
                                           next_attempt_at=None)

        started = await self._change(task, start, known)
        if started is None and await self._deliveries.create(task.account_id, task.delivery_id, pending(task)):
            started = await self._change(task, start)  # its record expired or was never written: from the task
        return started

    async def _conclude(self, msg: Msg, task: bus.DeliveryTask, outcome: Outcome,
                        started: tuple[StoredDelivery, int]) -> None:
        attempt = started[0].view.attempts
        schedule = self._settings.schedule
        if outcome.status is not None and 200 <= outcome.status < 300:
            await self._settle(task, "delivered", outcome, started)
        elif outcome.status == 410:
            await self._settle(task, "failed", outcome, started)
            if task.endpoint_id is not None:
                await self._disable_endpoint(task)
        elif outcome.permanent or attempt >= len(schedule):
            await self._settle(task, "failed", outcome, started)
        else:
            delay = schedule[attempt]
            if outcome.status in (429, 503):
                asked = retry_after_s(outcome.retry_after, time.time())
                if asked is not None:
                    delay = min(asked, self._settings.retry_after_cap_s)
            await self._settle(task, "pending", outcome, started, next_in_s=delay)
            await msg.nak(delay=delay)
            return
        await msg.ack()

    async def _post(self, task: bus.DeliveryTask, url: UrlFacts, attempt: int) -> Outcome:
        if self._tracing is None or not self._tracing.enabled or not task.traceparent:
            return await self._attempt(task, url, attempt)
        # An attempt is a CLIENT span in the trace of the request that caused the event; the URL's
        # path and query stay out (they may hold the customer's secrets).
        span = self._tracing.tracer.start_span(
            "POST", context=Tracing.extract(None, task.traceparent), kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "server.address": url.parsed.host if url.parsed else "",
                        "switchboard.webhook.event_type": task.event_type,
                        "switchboard.webhook.delivery_id": task.delivery_id, "switchboard.webhook.attempt": attempt})
        outcome = await self._attempt(task, url, attempt)
        if outcome.status is not None:
            span.set_attribute("http.response.status_code", outcome.status)
        if outcome.error is not None:
            span.set_attribute("error.type", str(outcome.status) if outcome.status else "delivery_failed")
            span.set_status(Status(StatusCode.ERROR, outcome.error))
        span.end()
        return outcome

    async def _attempt(self, task: bus.DeliveryTask, url: UrlFacts, attempt: int) -> Outcome:
        if url.refused is not None or url.parsed is None:
            return Outcome(error=url.refused, permanent=True)
        now = int(time.time())
        active = (await self._keys.signing(task.account_id)).active(now)
        headers = delivery_headers(active, task.delivery_id, task.event_type, attempt, now, task.body)
        try:
            async with self._session.post(url.parsed, data=task.body, headers=headers,
                                          allow_redirects=False) as response:
                await response.content.read(4096)  # a little of the answer, so the connection can be reused
                error = None if response.status < 300 else f"HTTP {response.status}"
                return Outcome(status=response.status, error=error, retry_after=response.headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedUrl):
                return Outcome(error=str(exc.os_error), permanent=True)
            return Outcome(error=f"connection failed: {exc}"[:_ERROR_CHARS])
        except TimeoutError:
            return Outcome(error=f"no answer within {self._settings.timeout_s:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(error=f"request failed: {exc!r}"[:_ERROR_CHARS])

    async def _change(self, task: bus.DeliveryTask, edit: Callable[[DeliveryView], DeliveryView],
                      known: tuple[StoredDelivery, int] | None = None) -> tuple[StoredDelivery, int] | None:
        """Edit this round's record while it is pending (None if it is absent, settled, or a
        redeliver has started another round meanwhile)."""
        editable = False

        def apply(stored: StoredDelivery) -> StoredDelivery | None:
            nonlocal editable  # decided afresh on each try of the revision check
            editable = stored.task.round == task.round and stored.view.status == "pending"
            return msgspec.structs.replace(stored, view=edit(stored.view)) if editable else None

        changed = await self._deliveries.change_at(task.account_id, task.delivery_id, apply, known)
        return changed if editable else None

    async def _settle(self, task: bus.DeliveryTask, status: str, outcome: Outcome,
                      known: tuple[StoredDelivery, int] | None = None, next_in_s: float = 0.0) -> None:
        now = time.time()

        def settle(view: DeliveryView) -> DeliveryView:
            return msgspec.structs.replace(
                view, status=status, updated_at=now, last_status_code=outcome.status, last_error=outcome.error,
                delivered_at=now if status == "delivered" else view.delivered_at,
                next_attempt_at=now + next_in_s if status == "pending" else None)

        changed = await self._change(task, settle, known)
        settled = None if changed is None else changed[0]
        if settled is not None and task.job_id is not None and task.endpoint_id is None and valid_id(task.job_id):
            verdict = None if status == "pending" else status == "delivered"
            record = bus.WebhookStatus(delivery_id=task.delivery_id, delivered=verdict,
                                       attempts=settled.view.attempts, last_status=outcome.status)
            await self._status_kv.put(f"{task.account_id}.{task.job_id}", bus.encode_status(record))
        if self._metrics is not None:
            self._metrics.delivery(task.event_type, status)
        log.info("webhook_attempt", delivery_id=task.delivery_id, event_type=task.event_type, status=status,
                 http_status=outcome.status, error=outcome.error)

    async def _disable_endpoint(self, task: bus.DeliveryTask) -> None:
        assert task.endpoint_id is not None

        def disable(endpoint: EndpointView) -> EndpointView:
            return msgspec.structs.replace(endpoint, disabled=True, updated_at=int(time.time()),
                                           disabled_reason="the receiver answered 410 Gone")

        await self._endpoints.change(task.account_id, task.endpoint_id, disable)
        # Read-your-writes for this replica's fan-out and deliveries, which read the mirror.
        key = Records.key(task.account_id, task.endpoint_id)
        await self._mirror.wait_until(lambda entries: (e := entries.get(key)) is None or e.disabled, 2.0)
        log.warning("webhook_endpoint_disabled", account_id=task.account_id, endpoint_id=task.endpoint_id)
