"""The webhooks service's knobs, read once from SWITCHBOARD_* variables."""

import msgspec

from libs.runtime.env import env_float, env_int, env_str

DEFAULT_SCHEDULE = "0,30,120,600,3600,21600"  # the contract's 0s, 30s, 2m, 10m, 1h, 6h


class WebhookSettings(msgspec.Struct, kw_only=True, frozen=True):
    schedule: tuple[float, ...]  # delay before attempt n+1 is schedule[n]; len = attempts in all
    timeout_s: float  # one attempt, connect to last byte
    ack_wait_s: float  # a replica that dies mid-attempt has its delivery picked up after this
    per_target: int  # attempts in flight to one receiver (scheme://host:port) per replica
    max_in_flight: int  # deliveries in flight per replica
    busy_delay_s: float  # a delivery whose receiver is at its bound comes back after this (not an attempt)
    retry_after_cap_s: float
    secret_grace_s: float  # how long a rotated-out secret keeps signing
    retention_s: float  # delivery records expire this long after their last change
    allow_hosts: str


def _schedule(spec: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in spec.split(",") if part.strip())
    except ValueError as exc:
        raise SystemExit(f"switchboard: SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, "
                         f"got {spec!r}") from exc
    if not delays or len(delays) > 20 or any(d < 0 for d in delays):
        raise SystemExit("switchboard: SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE needs 1 to 20 non-negative delays")
    return delays


def load() -> WebhookSettings:
    timeout_s = env_float("SWITCHBOARD_WEBHOOK_TIMEOUT_S", 10.0)
    return WebhookSettings(
        schedule=_schedule(env_str("SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE", DEFAULT_SCHEDULE)),
        timeout_s=timeout_s,
        # Longer than an attempt can take, or a live attempt would be handed to a second replica.
        ack_wait_s=max(env_float("SWITCHBOARD_WEBHOOK_ACK_WAIT_S", timeout_s + 20), timeout_s + 1),
        per_target=max(1, env_int("SWITCHBOARD_WEBHOOK_PER_TARGET_CONCURRENCY", 8)),
        max_in_flight=max(1, env_int("SWITCHBOARD_WEBHOOK_MAX_IN_FLIGHT", 256)),
        busy_delay_s=env_float("SWITCHBOARD_WEBHOOK_BUSY_DELAY_S", 0.2),
        retry_after_cap_s=env_float("SWITCHBOARD_WEBHOOK_RETRY_AFTER_CAP_S", 21600.0),
        secret_grace_s=env_float("SWITCHBOARD_WEBHOOK_SECRET_GRACE_S", 86400.0),
        retention_s=env_float("SWITCHBOARD_WEBHOOK_RETENTION_S", 30 * 86400.0),
        allow_hosts=env_str("SWITCHBOARD_WEBHOOK_ALLOW_HOSTS", ""),
    )
