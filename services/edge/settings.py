"""Edge settings: environment first, then the config file's [edge], then defaults."""

import msgspec

from libs.contracts.config import EdgeConfig
from libs.runtime.env import env_float, env_int, env_str, nats_url


class EdgeSettings(msgspec.Struct, frozen=True):
    host: str
    port: int
    nats_url: str
    request_timeout_s: float
    stream_idle_timeout_s: float
    max_body_bytes: int
    admin_key: str | None
    access_log: bool
    snapshots: bool  # keep request snapshots for replays (sub-accounts and requests may still opt out)
    max_file_bytes: int = 512 * 1024 * 1024  # one uploaded file (POST /v1/files), streamed, never in memory
    public_url: str | None = None  # base of signed URLs; else the request's scheme and host
    url_signing_key: str | None = None  # else a random key kept in KV sb_gateway_secrets
    # Reserve each request's worst-case cost on leased slices of its caps (spend_leases.py); off: the
    # ledger's published spend alone stops a sub-account, a moment after the cap is crossed.
    spend_leases: bool = True
    reserve_output_tokens: int = 4096  # output reserved against a cap for a request that sets no limit

    @classmethod
    def load(cls, cfg: EdgeConfig) -> "EdgeSettings":
        timeout = env_float("SWITCHBOARD_REQUEST_TIMEOUT_S", cfg.request_timeout_s or 130.0)
        return cls(
            host=env_str("SWITCHBOARD_HTTP_HOST", cfg.host or "127.0.0.1"),
            port=env_int("SWITCHBOARD_HTTP_PORT", cfg.port or 8080),
            nats_url=nats_url(),
            request_timeout_s=timeout,
            stream_idle_timeout_s=env_float("SWITCHBOARD_STREAM_IDLE_TIMEOUT_S", timeout),
            max_body_bytes=env_int("SWITCHBOARD_MAX_BODY_BYTES", cfg.max_body_bytes or 8 * 1024 * 1024),
            admin_key=env_str("SWITCHBOARD_ADMIN_KEY", "") or None,
            access_log=env_str("SWITCHBOARD_ACCESS_LOG", "0") in ("1", "true", "yes"),
            snapshots=env_str("SWITCHBOARD_SNAPSHOTS", "1") not in ("0", "false", "no", "off"),
            max_file_bytes=env_int("SWITCHBOARD_MAX_FILE_BYTES", 512 * 1024 * 1024),
            public_url=env_str("SWITCHBOARD_PUBLIC_URL", "").rstrip("/") or None,
            url_signing_key=env_str("SWITCHBOARD_URL_SIGNING_KEY", "") or None,
            spend_leases=env_str("SWITCHBOARD_SPEND_LEASES", "1") not in ("0", "false", "no", "off"),
            reserve_output_tokens=env_int("SWITCHBOARD_RESERVE_OUTPUT_TOKENS", 4096),
        )
