"""Per-API-key RPM/TPM limits that hold across all edge replicas, checked without a network hop.

Each replica keeps, per key, the requests admitted and tokens used in the current and the
previous wall-clock minute (window id = unix_seconds // 60), as seen by the whole fleet: its
own counts plus what the other replicas reported. Every `sync_interval_s` it publishes the
deltas it added since its last report on `subjects.RATE_SYNC` (a plain subscription, so every
replica gets every report); each replica adds the others' deltas to its view and ignores its
own. The check itself is a dict lookup and the sliding-window approximation
`estimate = current + previous * (1 - elapsed_fraction_of_current)`.

Semantics:
- The limit is global: N replicas together admit about `rpm`, not N x `rpm`.
- It is approximate. A replica does not see the others' admissions until their next report,
  so the fleet can over-admit by at most (N - 1) x (requests one replica can admit in one sync
  interval) plus whatever it admits during the publish latency (~ms). One replica never admits
  more than the limit on its own, so the worst case (a burst hitting every replica within one
  interval) is N x the limit; traffic spread over more than a sync interval is limited exactly.
- Fail open on unknown remote state, never closed: a replica cut off from NATS keeps limiting
  with what it knows (its own counts plus the last remote view); reports lost while it was
  away are not replayed (core NATS), so the fleet under-counts, it never blocks a key for it.
- TPM is checked before the request (the token count is only known afterwards): a key is
  rejected once its token estimate has reached `tpm`; `record_tokens` adds the tokens of an
  answered request.
- Unlimited keys (both limits None) cost nothing: they are not looked up, counted or reported.
- Memory: only the current and previous windows per key; keys idle for two windows are dropped.
- Retry-After: the seconds until the estimate, decaying with no further traffic, would admit
  the request again (exact for that assumption, rounded up, 1..120 s). It is computed from
  this replica's view, so concurrent traffic elsewhere can make a retry fail again.
"""

import asyncio
import math
import time
from collections.abc import Callable

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.contracts import subjects
from libs.contracts.bus.ratelimit import RateSync
from libs.runtime.background import BackgroundTask

log = structlog.get_logger()

WINDOW_S = 60
# Caps one report's size well under NATS's default 1 MiB max_payload (~40 bytes a key).
_MAX_KEYS_PER_MESSAGE = 10_000


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(RateSync)


class _Counter:
    """Fleet-wide view of one key, plus this replica's deltas not yet reported."""

    __slots__ = ("d_req", "d_tok", "prev_req", "prev_tok", "req", "tok", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.req = self.tok = 0  # current window, all replicas
        self.prev_req = self.prev_tok = 0  # previous window, all replicas
        self.d_req = self.d_tok = 0  # this replica's additions to `window` since its last report


def _retry_after(cur: int, prev: int, room: int, elapsed: float) -> int:
    """Seconds until cur + prev * (1 - f) <= room, assuming no more traffic."""
    if room < 0:  # a limit of 0 never admits anything
        return WINDOW_S
    if cur > room:
        # The current window alone is over: wait for it to become the previous one and decay.
        wait = (WINDOW_S - elapsed) + WINDOW_S * (1 - room / cur)
    elif prev > 0:
        # Within this window: wait until the previous window's weight has decayed enough.
        wait = WINDOW_S * (1 - (room - cur) / prev) - elapsed
    else:
        wait = 1
    return max(1, math.ceil(wait))


class RateLimiter:
    def __init__(self, nc: Client, replica_id: str, sync_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.time) -> None:
        self._nc = nc
        self._replica_id = replica_id  # must be unique per replica: own reports are recognised by it
        self._interval = sync_interval_s
        self._clock = clock
        self._counters: dict[str, _Counter] = {}
        self._dirty: set[str] = set()  # keys with unreported deltas
        # Deltas of a window that ended before they were reported: (window, key, requests, tokens).
        self._carry: list[tuple[int, str, int, int]] = []
        self._swept_window = 0
        self._task = BackgroundTask("rate-limit-sync")
        self._sub: Subscription | None = None
        # Sync intervals spent cut off from the fleet (limiting on this replica's view alone):
        # logged at each transition, counted here (for /metrics once it exists).
        self.open_intervals = 0
        self._cut_off = False

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.RATE_SYNC, cb=self._on_sync)
        await self._nc.flush()  # the server knows the subscription before we count on reports
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        try:
            await self._flush()  # hand our last counts to the replicas that stay
            if self._sub is not None:
                await self._sub.unsubscribe()
        except Exception as exc:  # NATS already gone: nothing left to tell anyone
            log.warning("ratelimit_stop_flush_failed", error=repr(exc))
        self._sub = None

    def check_request(self, key_id: str, rpm: int | None, tpm: int | None) -> int | None:
        """Admit (count it, return None) or reject (return Retry-After seconds) one request."""
        if rpm is None and tpm is None:
            return None
        now = self._clock()
        window = int(now // WINDOW_S)
        c = self._counters.get(key_id)
        if c is None:
            c = self._counters[key_id] = _Counter(window)
        elif c.window != window:
            self._roll(key_id, c, window)
        elapsed = now - window * WINDOW_S
        weight = 1.0 - elapsed / WINDOW_S
        if rpm is not None and c.req + c.prev_req * weight + 1 > rpm:
            return _retry_after(c.req, c.prev_req, rpm - 1, elapsed)
        if tpm is not None and c.tok + c.prev_tok * weight >= tpm:
            return _retry_after(c.tok, c.prev_tok, tpm - 1, elapsed)
        c.req += 1
        c.d_req += 1
        self._dirty.add(key_id)
        return None

    def record_tokens(self, key_id: str, tokens: int) -> None:
        """Add an answered request's tokens. A key this replica never checked with a limit is
        unlimited here, so there is nothing to count."""
        c = self._counters.get(key_id)
        if c is None or tokens <= 0:
            return
        window = int(self._clock() // WINDOW_S)
        if c.window != window:
            self._roll(key_id, c, window)
        c.tok += tokens
        c.d_tok += tokens
        self._dirty.add(key_id)

    def usage(self, key_id: str) -> tuple[float, float]:
        """The fleet-wide (requests, tokens) estimate for the sliding minute, without counting
        anything (for x-ratelimit-* headers and tests)."""
        c = self._counters.get(key_id)
        if c is None:
            return 0.0, 0.0
        now = self._clock()
        window = int(now // WINDOW_S)
        if c.window == window:
            weight = 1.0 - (now - window * WINDOW_S) / WINDOW_S
            return c.req + c.prev_req * weight, c.tok + c.prev_tok * weight
        if c.window == window - 1:
            weight = 1.0 - (now - window * WINDOW_S) / WINDOW_S
            return c.req * weight, c.tok * weight
        return 0.0, 0.0

    def tracked_keys(self) -> int:
        return len(self._counters)

    def _roll(self, key_id: str, c: _Counter, window: int) -> None:
        if window < c.window:  # the clock stepped back: keep counting in the newer window
            return
        if c.d_req or c.d_tok:  # unreported deltas stay tagged with the window they belong to
            self._carry.append((c.window, key_id, c.d_req, c.d_tok))
            c.d_req = c.d_tok = 0
        if window == c.window + 1:
            c.prev_req, c.prev_tok = c.req, c.tok
        else:
            c.prev_req = c.prev_tok = 0
        c.req = c.tok = 0
        c.window = window

    def _note_connection(self) -> None:
        """Fail open, but say so: a replica cut off from NATS neither sends nor hears reports."""
        cut_off = not self._nc.is_connected
        if cut_off:
            self.open_intervals += 1
        if cut_off != self._cut_off:
            self._cut_off = cut_off
            if cut_off:
                log.warning("ratelimit_failing_open", reason="cut off from NATS: limiting on this replica's counts")
            else:
                log.info("ratelimit_synced_again", intervals_cut_off=self.open_intervals)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._note_connection()
            try:
                await self._flush()
            except Exception as exc:  # keep limiting locally; the remotes under-count meanwhile
                log.warning("ratelimit_sync_failed", error=repr(exc))
            window = int(self._clock() // WINDOW_S)
            if window != self._swept_window:
                self._sweep(window)

    async def _flush(self) -> None:
        batches: dict[int, dict[str, tuple[int, int]]] = {}

        def add(window: int, key_id: str, req: int, tok: int) -> None:
            batch = batches.setdefault(window, {})
            old_req, old_tok = batch.get(key_id, (0, 0))
            batch[key_id] = (old_req + req, old_tok + tok)

        carry, self._carry = self._carry, []
        dirty, self._dirty = self._dirty, set()
        for window, key_id, req, tok in carry:
            add(window, key_id, req, tok)
        for key_id in dirty:
            c = self._counters.get(key_id)
            if c is not None and (c.d_req or c.d_tok):
                add(c.window, key_id, c.d_req, c.d_tok)
                c.d_req = c.d_tok = 0
        for window, deltas in batches.items():
            items = list(deltas.items())
            for start in range(0, len(items), _MAX_KEYS_PER_MESSAGE):
                chunk = dict(items[start:start + _MAX_KEYS_PER_MESSAGE])
                await self._nc.publish(subjects.RATE_SYNC, _encoder.encode(RateSync(self._replica_id, window, chunk)))

    async def _on_sync(self, msg: Msg) -> None:
        try:
            report = _decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("ratelimit_bad_sync", error=str(exc))
            return
        if report.replica == self._replica_id:
            return  # already counted when admitted
        window = int(self._clock() // WINDOW_S)
        if report.window < window - 1:
            return  # no longer weighs in any estimate
        for key_id, (req, tok) in report.deltas.items():
            c = self._counters.get(key_id)
            if c is None:
                c = self._counters[key_id] = _Counter(window)
            elif c.window != window:
                self._roll(key_id, c, window)
            if report.window < c.window:
                c.prev_req += req
                c.prev_tok += tok
            else:  # this window, or a sender whose clock is slightly ahead
                c.req += req
                c.tok += tok

    def _sweep(self, window: int) -> None:
        """Forget keys idle for two windows: their estimate is zero whatever happens next."""
        self._swept_window = window
        for key_id in [k for k, c in self._counters.items() if c.window <= window - 2]:
            del self._counters[key_id]
