"""Per-request fault and latency directives.

The gateway forwards the model name untouched but not arbitrary client headers, so directives
ride in the model name (``gpt-sim+status=503+retry_after=7``). When the simulator is driven
directly they may also come from ``x-sim-*`` headers; a header wins over the same directive in
the model name because it is the more explicit of the two.

Directives (model-name key / header):

- ``status=S`` / ``x-sim-status``: answer with HTTP error S (400-599) in the wire's error shape.
- ``retry_after=V`` / ``x-sim-retry-after``: the Retry-After value sent with ``status``.
- ``latency=MS`` / ``x-sim-latency-ms``: delay before a non-streamed answer.
- ``ttft=MS`` / ``x-sim-ttft-ms``: delay before the first streamed event.
- ``tps=N`` / ``x-sim-tps``: pace a stream at N pieces per second.
- ``die_after=N`` / ``x-sim-die-after``: stream N pieces, then drop the connection (a non-streamed
  body is cut short of its Content-Length).
- ``cut_after=N`` / ``x-sim-cut-after``: stream N pieces, then end the body cleanly without the
  wire's end marker (no finish chunk and no ``[DONE]``, no ``message_stop``, no ``finishReason``):
  a truncated stream that looks like a normal close.
- ``malformed`` / ``x-sim-malformed``: answer with invalid JSON.
- ``hang`` / ``x-sim-hang``: never answer.
- ``reset`` / ``x-sim-reset``: drop the connection with a TCP RST.
- ``plain`` / ``x-sim-plain``: ignore response_format (OpenAI chat): prose where JSON was asked for.
- ``truncate=N`` / ``x-sim-truncate``: cut the answer text to its first N pieces, as if a
  max_tokens of N had been asked for (finish reason "length"); lets one model answer worse than
  another (``gpt-sim+truncate=2``). Tool calls are not cut.

Long-running generations (video, music, 3D; see jobs.py) also read, from the model name at submit:

- ``job_s=S`` / ``x-sim-job-s``: the job runs S seconds (default 0: done at the first poll).
- ``fail`` / ``x-sim-fail``: the job fails at the provider when it ends.
- ``progress`` / ``x-sim-progress``: status answers report progress (elapsed / job_s) while it runs.
- ``poll_status=S`` / ``x-sim-poll-status``: every status poll of the job answers HTTP error S.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from tools.upstream_sim.settings import SimSettings


class DirectiveError(ValueError):
    """A directive was unknown or had an unusable value (reported to the client as a 400)."""


class Directives(msgspec.Struct, kw_only=True):
    """Resolved directives: timing fields already fall back to the server settings."""

    status: int | None = None
    retry_after: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tps: float = 0.0
    die_after: int | None = None
    cut_after: int | None = None  # streams: N pieces, then a clean close without the end marker
    malformed: bool = False
    hang: bool = False
    reset: bool = False
    plain: bool = False  # ignore response_format: answer prose where JSON was asked for
    truncate: int | None = None  # answer only the first N pieces of the text, as max_tokens=N would
    job_s: float = 0.0  # long-running jobs: how long the job runs
    fail: bool = False  # long-running jobs: fail at the provider when it ends
    progress: bool = False  # long-running jobs: report progress while running
    poll_status: int | None = None  # long-running jobs: status polls answer this HTTP error


# Model-name key -> (header name, struct field).
_KEYS: dict[str, tuple[str, str]] = {
    "status": ("x-sim-status", "status"),
    "retry_after": ("x-sim-retry-after", "retry_after"),
    "latency": ("x-sim-latency-ms", "latency_ms"),
    "ttft": ("x-sim-ttft-ms", "ttft_ms"),
    "tps": ("x-sim-tps", "tps"),
    "die_after": ("x-sim-die-after", "die_after"),
    "cut_after": ("x-sim-cut-after", "cut_after"),
    "malformed": ("x-sim-malformed", "malformed"),
    "hang": ("x-sim-hang", "hang"),
    "reset": ("x-sim-reset", "reset"),
    "plain": ("x-sim-plain", "plain"),
    "truncate": ("x-sim-truncate", "truncate"),
    "job_s": ("x-sim-job-s", "job_s"),
    "fail": ("x-sim-fail", "fail"),
    "progress": ("x-sim-progress", "progress"),
    "poll_status": ("x-sim-poll-status", "poll_status"),
}
_FLAGS = frozenset({"malformed", "hang", "reset", "plain", "fail", "progress"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _nonneg_float(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise DirectiveError(f"sim directive {key!r} needs a number, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise DirectiveError(f"sim directive {key!r} must be a finite non-negative number")
    return value


def _convert(key: str, raw: str) -> object:
    if key in _FLAGS:
        return raw.strip().lower() not in _FALSE
    if key == "retry_after":
        if not raw:
            raise DirectiveError("sim directive 'retry_after' needs a value")
        return raw
    if key in ("status", "poll_status"):
        try:
            status = int(raw)
        except ValueError:
            raise DirectiveError(f"sim directive {key!r} needs an integer, got {raw!r}") from None
        if not 400 <= status <= 599:
            raise DirectiveError(f"sim directive {key!r} must be an HTTP error status (400-599)")
        return status
    if key in ("die_after", "truncate", "cut_after"):
        try:
            count = int(raw)
        except ValueError:
            raise DirectiveError(f"sim directive {key!r} needs an integer, got {raw!r}") from None
        if count < 0:
            raise DirectiveError(f"sim directive {key!r} must be >= 0")
        return count
    return _nonneg_float(key, raw)


def parse_directives(model: str, sim_headers: Mapping[str, str], settings: SimSettings) -> tuple[str, Directives]:
    """Split ``model`` into its base name and directives, merging ``x-sim-*`` headers.

    ``sim_headers`` must have lower-case keys. Raises :class:`DirectiveError` on bad input.
    """
    base, plus, rest = model.partition("+")
    found: dict[str, object] = {}
    if plus:
        for item in rest.split("+"):
            key, eq, raw = item.partition("=")
            key = key.strip().lower()
            if key not in _KEYS:
                raise DirectiveError(f"unknown sim directive {key!r} in model name {model!r}")
            if not eq and key not in _FLAGS:
                raise DirectiveError(f"sim directive {key!r} needs a value ({key}=...)")
            found[_KEYS[key][1]] = _convert(key, raw.strip() if eq else "1")
    if sim_headers:
        for key, (header, field) in _KEYS.items():
            raw = sim_headers.get(header)
            if raw is not None:
                found[field] = _convert(key, raw.strip())
    directives = Directives(latency_ms=settings.latency_ms, ttft_ms=settings.ttft_ms, tps=settings.tps)
    for field, value in found.items():
        setattr(directives, field, value)
    return base, directives
