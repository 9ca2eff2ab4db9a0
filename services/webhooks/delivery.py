"""One delivery attempt per WEBHOOKS message: sign, POST, record, then ack or NAK.

Retries are JetStream redeliveries: a failed attempt NAKs its message with the next
delay of the schedule (or the receiver's Retry-After on 429/503), so no timer of ours
holds anything. Attempts are counted in the delivery record, not by num_delivered: a
message put back because its receiver is at its concurrency bound is not an attempt.
The record's attempt count is written before the POST, so a replica killed mid-attempt
costs that attempt and the next replica sends attempt n+1 with the same delivery id.
"""

import email.utils
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from libs.contracts.bus import webhooks as bus
from libs.contracts.http.webhooks import DeliveryView, EndpointView
from services.webhooks.deliveries import StoredDelivery, pending
from services.webhooks.records import Records, valid_id
from services.webhooks.settings import WebhookSettings
from services.webhooks.signing import delivery_headers
from services.webhooks.signing_keys import SigningKeys
from services.webhooks.ssrf import Guard, RefusedUrl

log = structlog.get_logger()
_ERROR_CHARS = 300


class TargetSlots:
    """At most `bound` attempts in flight to one receiver, so a slow one cannot take every slot."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._busy: dict[str, int] = {}

    def enter(self, target: str) -> bool:
        if self._busy.get(target, 0) >= self._bound:
            return False
        self._busy[target] = self._busy.get(target, 0) + 1
        return True

    def leave(self, target: str) -> None:
        left = self._busy.get(target, 1) - 1
        if left:
            self._busy[target] = left
        else:
            self._busy.pop(target, None)


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def retry_after_s(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
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
                 deliveries: Records[StoredDelivery], endpoints: Records[EndpointView], keys: SigningKeys,
                 status_kv: KeyValue) -> None:
        self._settings = settings
        self._session = session
        self._guard = guard
        self._deliveries = deliveries
        self._endpoints = endpoints
        self._keys = keys
        self._status_kv = status_kv
        self._slots = TargetSlots(settings.per_target)

    async def handle(self, msg: Msg) -> None:
        try:
            task = bus.decode_task(msg.data)
        except msgspec.DecodeError:
            log.error("webhooks_bad_task", subject=msg.subject)
            await msg.term()
            return
        found = await self._deliveries.read(task.account_id, task.delivery_id)
        if found is None:  # its record expired or was never written: deliver from the task alone
            await self._deliveries.create(task.account_id, task.delivery_id, pending(task))
            found = await self._deliveries.read(task.account_id, task.delivery_id)
            if found is None:
                raise RuntimeError(f"delivery record {task.delivery_id} vanished")  # put back, tried again
        stored = found[0]
        if stored.task.round != task.round or stored.view.status != "pending":
            await msg.ack()  # already settled, or superseded by a redeliver
            return
        url = task.url
        if task.endpoint_id is not None:
            endpoint = await self._endpoints.get(task.account_id, task.endpoint_id)
            if endpoint is None or endpoint.disabled:
                await self._settle(task, "failed", Outcome(error="the endpoint was deleted or disabled"))
                await msg.ack()
                return
            url = endpoint.url  # a corrected URL applies to deliveries still pending
        target = target_of(url)
        if not self._slots.enter(target):
            await msg.nak(delay=self._settings.busy_delay_s)
            return
        try:
            await self._attempt(msg, task, url, found)
        finally:
            self._slots.leave(target)

    async def _attempt(self, msg: Msg, task: bus.DeliveryTask, url: str, known: tuple[StoredDelivery, int]) -> None:
        def start(view: DeliveryView) -> DeliveryView:
            return msgspec.structs.replace(view, attempts=view.attempts + 1, url=url, updated_at=time.time(),
                                           next_attempt_at=None)

        started = await self._change(task, start, known)
        if started is None:
            await msg.ack()
            return
        attempt = started[0].view.attempts
        outcome = await self._post(task, url, attempt)
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

    async def _post(self, task: bus.DeliveryTask, url: str, attempt: int) -> Outcome:
        try:
            self._guard.check_url(url)
        except RefusedUrl as exc:
            return Outcome(error=str(exc), permanent=True)
        now = int(time.time())
        active = (await self._keys.get(task.account_id)).active(now)
        headers = delivery_headers(active, task.delivery_id, task.event_type, attempt, now, task.body)
        try:
            async with self._session.post(url, data=task.body, headers=headers, allow_redirects=False) as response:
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
        """Edit this round's record (None if a redeliver has started another round meanwhile)."""

        def apply(stored: StoredDelivery) -> StoredDelivery | None:
            if stored.task.round != task.round:
                return None
            return msgspec.structs.replace(stored, view=edit(stored.view))

        changed = await self._deliveries.change_at(task.account_id, task.delivery_id, apply, known)
        if changed is None or changed[0].task.round != task.round:
            return None
        return changed

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
        log.info("webhook_attempt", delivery_id=task.delivery_id, event_type=task.event_type, status=status,
                 http_status=outcome.status, error=outcome.error)

    async def _disable_endpoint(self, task: bus.DeliveryTask) -> None:
        assert task.endpoint_id is not None

        def disable(endpoint: EndpointView) -> EndpointView:
            return msgspec.structs.replace(endpoint, disabled=True, updated_at=int(time.time()),
                                           disabled_reason="the receiver answered 410 Gone")

        await self._endpoints.change(task.account_id, task.endpoint_id, disable)
        log.warning("webhook_endpoint_disabled", account_id=task.account_id, endpoint_id=task.endpoint_id)
