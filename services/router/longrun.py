"""Long-running generations (video, music, 3D) for the jobs service: submit, poll, fetch, cancel
on `subjects.INFER_LONGRUN` (contract: libs/contracts/bus/longrun.py).

submit resolves the model (`""`/`"auto"`: the cheapest enabled model of the modality), checks
its modality, and starts the job at the first deployment that takes it (the model's
deployments, then its fallbacks; breakers and health as for any call). poll, fetch and
cancel go to the provider named in the handle, without failover: the job lives there.
fetch streams the result file(s) into the Object Store and meters the job once: the usage
event's request id is the job id, so a fetch repeated after a crash is deduplicated by the
stream and the ledger. Units: whole seconds of video or audio (what the provider reports,
else what was asked for), or 1 per 3D asset. Failed and cancelled jobs are never fetched,
so never billed.
"""

import math
import random
import time

import msgspec
import structlog
from nats.aio.msg import Msg

from libs.contracts import errors
from libs.contracts.bus.inference import DispatchMeta, Failure, Usage
from libs.contracts.bus.longrun import (
    MODALITIES,
    MODALITY_3D,
    OP_CANCEL,
    OP_FETCH,
    OP_POLL,
    OP_SUBMIT,
    OPERATIONS,
    JobOutput,
    LongRunHandle,
    LongRunRequest,
    LongRunStatus,
    decode_request,
    encode,
)
from libs.contracts.bus.usage import UsageEvent
from libs.contracts.errors import ErrorBody
from libs.contracts.files import job_object_name
from libs.contracts.http.chat import AUTO_MODEL
from libs.contracts.ids import valid_id
from libs.runtime.blobs import BlobStore, TooLarge
from libs.runtime.logs import trace_id_of
from services.router.catalog import Catalog, Plan, RouteError
from services.router.failures import failure, from_upstream
from services.router.health import HealthBook
from services.router.longrun_spec import SpecError, content_type_for, filename_for, spec_of
from services.router.pricing import Price, Pricing
from services.router.providers.base import UpstreamError
from services.router.providers.longrun_base import LongRunAdapter, Progress
from services.router.routing import candidates, retryable
from services.router.usage_publisher import UsagePublisher

log = structlog.get_logger()
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
_DEFAULT_SECONDS = 5  # a provider that reports no duration for a job that asked for none


class _Refused(Exception):
    def __init__(self, answer: Failure) -> None:
        super().__init__(answer.error.message)
        self.answer = answer


def _bad(message: str, param: str | None = None) -> _Refused:
    return _Refused(failure(400, errors.INVALID_REQUEST, message, param=param))


class LongRunner:
    def __init__(self, catalog: Catalog, adapters: dict[str, LongRunAdapter], pricing: Pricing,
                 usage: UsagePublisher | None, health: HealthBook, blobs: BlobStore,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._catalog = catalog
        self._adapters = adapters
        self._pricing = pricing
        self._usage = usage
        self._health = health
        self._blobs = blobs
        self._max_bytes = max_bytes
        self._rng = random.Random()

    async def handle(self, msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            request = decode_request(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            await msg.respond(encode(failure(400, errors.INVALID_REQUEST, "undecodable long-running request")))
            return
        structlog.contextvars.bind_contextvars(request_id=request.job_id, trace_id=trace_id_of(request.traceparent))
        try:
            answer: LongRunStatus | Failure = await self._answer(request)
        except _Refused as refused:
            answer = refused.answer
        except UpstreamError as exc:
            provider = request.handle.provider if request.handle is not None else "upstream"
            answer = from_upstream(exc, provider)
            log.warning("longrun_upstream_failed", op=request.op, provider=provider, kind=exc.kind,
                        status=exc.status, error=exc.message)
        except Exception:
            log.exception("longrun_failed", op=request.op)
            answer = failure(500, errors.INTERNAL, f"Internal router error (job {request.job_id}).")
        await msg.respond(encode(answer))

    async def _answer(self, request: LongRunRequest) -> LongRunStatus | Failure:
        if not valid_id(request.job_id):
            raise _bad("job_id must be 1-64 letters, digits, '_' or '-'.", "job_id")
        if not valid_id(request.principal.account_id):
            raise _bad("The account id cannot name stored results.", "account_id")
        if request.modality not in MODALITIES:
            raise _bad(f"modality must be one of {', '.join(MODALITIES)}.", "modality")
        if request.op == OP_SUBMIT:
            return await self._submit(request)
        if request.op not in (OP_POLL, OP_FETCH, OP_CANCEL):
            raise _bad(f"Unknown long-running operation {request.op!r}.", "op")
        handle = request.handle
        if handle is None:
            raise _bad(f"{request.op} needs the handle submit answered.", "handle")
        adapter = self._adapters.get(handle.provider)
        if adapter is None:
            raise _Refused(failure(503, errors.UNAVAILABLE, f"Provider {handle.provider} is not configured on "
                                                            "this gateway any more; the job cannot be reached."))
        if request.op == OP_POLL:
            return _status(await adapter.poll(handle), handle)
        if request.op == OP_CANCEL:
            return _status(await adapter.cancel(handle), handle)
        return await self._fetch(request, handle, adapter)

    def _plan(self, request: LongRunRequest) -> Plan:
        model = request.model
        if model in ("", AUTO_MODEL):
            try:
                return self._catalog.auto_plan(request.modality, set(), "cost", self._health.latency_ms)
            except RouteError:
                raise _Refused(failure(503, errors.UNAVAILABLE, f"No {request.modality} model is configured on "
                                                                "this gateway (GET /v1/models lists them).")) from None
        try:
            if self._catalog.catalogued(model):
                modality = self._catalog.card(model).modality
                if modality != request.modality:
                    raise _bad(f"Model '{model}' generates {modality}, not {request.modality}; "
                               f"choose a {request.modality} model (GET /v1/models?modality={request.modality}).",
                               "model")
            return self._catalog.plan(model)
        except RouteError as exc:
            raise _Refused(failure(exc.status, exc.type, exc.message, param="model")) from None

    async def _submit(self, request: LongRunRequest) -> LongRunStatus:
        try:
            spec = spec_of(request.modality, request.body)
        except SpecError as exc:
            raise _bad(exc.message, exc.param) from None
        plan = self._plan(request)
        last: tuple[UpstreamError, str] | None = None
        for route in candidates(self._catalog, plan, [], self._health, self._rng):
            adapter = self._adapters.get(route.provider)
            if adapter is None:
                continue
            started = time.perf_counter()
            try:
                submitted = await adapter.submit(route.upstream_model, spec)
            except UpstreamError as exc:
                if not retryable(exc):
                    raise _Refused(from_upstream(exc, route.provider)) from None
                self._health.record(route.key, False, (time.perf_counter() - started) * 1000)
                log.warning("longrun_submit_failed", deployment=route.key, kind=exc.kind, status=exc.status,
                            error=exc.message)
                last = exc, route.provider
                continue
            self._health.record(route.key, True, (time.perf_counter() - started) * 1000)
            handle = LongRunHandle(route.provider, route.slug, route.upstream_model, submitted.upstream_id,
                                   submitted.extra)
            return _status(submitted.status, handle)
        if last is None:
            raise _bad(f"Model '{request.model}' cannot generate {request.modality}: its provider has no "
                       "long-running generation API on this gateway.", "model")
        raise _Refused(from_upstream(*last))

    async def _fetch(self, request: LongRunRequest, handle: LongRunHandle, adapter: LongRunAdapter) -> LongRunStatus:
        started = time.perf_counter()
        result = await adapter.fetch(handle)
        if result.status.state != "completed":
            return _status(result.status, handle)  # nothing to store yet, or ever: not billed
        outputs = []
        for index, file in enumerate(result.files):
            download = await adapter.download(file)
            content_type = content_type_for(download.content_type, file.url, request.modality)
            filename = filename_for(request.modality, content_type, index)
            name = job_object_name(request.principal.account_id, request.job_id, filename)
            try:
                info = await self._blobs.put(name, download.chunks(), content_type, max_bytes=self._max_bytes)
            except TooLarge:
                raise _Refused(failure(502, errors.PROVIDER_ERROR, f"Provider {handle.provider}'s result is larger "
                                                                   f"than the gateway's limit ({self._max_bytes} "
                                                                   "bytes).")) from None
            finally:
                download.close()
            outputs.append(JobOutput(filename, content_type, info.size, name))
        usage = Usage(output_units=self._units(request, handle, result.seconds))
        meta = DispatchMeta(model=handle.model, provider=handle.provider,
                            upstream_latency_ms=(time.perf_counter() - started) * 1000, usage=usage,
                            cost=self._pricing.cost(self._price(handle.model), usage, succeeded=True))
        self._meter(request, handle, meta)
        return LongRunStatus(state="completed", handle=handle, progress=100.0, outputs=outputs, meta=meta)

    @staticmethod
    def _units(request: LongRunRequest, handle: LongRunHandle, reported: float | None) -> int:
        if request.modality == MODALITY_3D:
            return 1
        asked = handle.extra.get("seconds", "")
        plain = asked.isascii() and asked.isdigit()  # isdigit() alone admits '²', which float() refuses
        seconds = reported or (float(asked) if plain else None) or _DEFAULT_SECONDS
        return math.ceil(seconds)

    def _price(self, slug: str) -> Price | None:
        try:
            return self._catalog.plan(slug).deployments[0].price
        except RouteError:
            return None

    def _meter(self, request: LongRunRequest, handle: LongRunHandle, meta: DispatchMeta) -> None:
        if self._usage is None:
            return
        usage, cost = meta.usage or Usage(), meta.cost
        principal = request.principal
        self._usage.submit(UsageEvent(
            request_id=request.job_id, ts_ms=time.time_ns() // 1_000_000, account_id=principal.account_id,
            key_id=principal.key_id, subaccount_id=principal.subaccount_id, tag=request.tag,
            operation=OPERATIONS[request.modality], requested_model=handle.model, model=handle.model,
            provider=handle.provider, status=200, priced=cost is not None and cost.priced,
            output_units=usage.output_units, output_cost_micros=cost.output_micros if cost else 0,
            markup_micros=cost.markup_micros if cost else 0, cost_micros=cost.total_micros if cost else 0,
            upstream_latency_ms=round(meta.upstream_latency_ms, 3), total_latency_ms=round(meta.upstream_latency_ms, 3),
        ))


def _status(progress: Progress, handle: LongRunHandle) -> LongRunStatus:
    error = None
    if progress.state == "failed":
        error = ErrorBody(message=f"Provider {handle.provider} failed the generation: {progress.error}",
                          type=errors.PROVIDER_ERROR, code=502)
    return LongRunStatus(state=progress.state, handle=handle, progress=progress.progress, error=error,
                         poll_after_s=progress.poll_after_s)
