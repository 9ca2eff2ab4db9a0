"""Signing one delivery attempt, in the contract's scheme and in Standard Webhooks'.

- `x-aig-signature: t=<unix>,v1=<hex>`: HMAC-SHA256 over `<t>.<raw body>`, keyed by the
  secret string as shown (`whsec_...`, UTF-8), one `v1=` per active secret.
- `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`: HMAC-SHA256 over
  `<id>.<timestamp>.<raw body>`, keyed by the base64-decoded part of the secret, one
  space-separated `v1,` entry per active secret (the `standardwebhooks` package verifies it).
During a rotation's grace window both the new and the previous secret sign.
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

SECRET_PREFIX: Final = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def aig_signature(active: Sequence[str], timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return ",".join([f"t={timestamp}"] + [
        "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in active])


def standard_signature(active: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(_standard_key(secret), signed, hashlib.sha256).digest()).decode()
                    for secret in active)


def delivery_headers(active: Sequence[str], delivery_id: str, event_type: str, attempt: int, timestamp: int,
                     body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Switchboard-Webhooks/1",
        "x-aig-signature": aig_signature(active, timestamp, body),
        "x-aig-event-type": event_type,
        "x-aig-delivery-id": delivery_id,
        "x-aig-attempt": str(attempt),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(active, delivery_id, timestamp, body),
    }
