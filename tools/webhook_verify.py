"""Verifying Switchboard webhooks on the receiving side: copy this file into your app.

Standard library only. Pass the raw request body (bytes, exactly as received: not
re-serialised JSON) and the secret from GET /v1/webhook-secret (`whsec_...`).

    from webhook_verify import verify
    if not verify(secret, raw_body, request.headers["x-aig-signature"]):
        return 401

`verify` checks `x-aig-signature: t=<unix>,v1=<hex>[,v1=<hex>...]` (HMAC-SHA256 of
"<t>.<raw body>" keyed by the whole secret string); during a secret rotation two v1
entries are sent and either may match. `verify_standard` checks the Standard Webhooks
headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`, keyed
by the base64-decoded part of the secret). Both refuse a timestamp more than
`tolerance_s` away from now (replays), and compare in constant time. Use the delivery id
(`x-aig-delivery-id`, equal to `webhook-id`) to drop a delivery you already processed.
"""

import base64
import binascii
import hashlib
import hmac
import time

_PREFIX = "whsec_"


def _fresh(timestamp: str, tolerance_s: float, now: float | None) -> bool:
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    return abs((time.time() if now is None else now) - sent) <= tolerance_s


def verify(secret: str, raw_body: bytes, signature_header: str, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """Whether `signature_header` (x-aig-signature) signs `raw_body` with `secret`, recently."""
    timestamp = ""
    candidates: list[str] = []
    for part in signature_header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    if not timestamp or not candidates or not _fresh(timestamp, tolerance_s, now):
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    # Every entry is compared (no early exit) so timing says nothing about which matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched


def verify_standard(secret: str, msg_id: str, timestamp: str, raw_body: bytes, signature_header: str,
                    tolerance_s: float = 300, now: float | None = None) -> bool:
    """Whether `signature_header` (webhook-signature) signs `<msg_id>.<timestamp>.<raw_body>`."""
    if not _fresh(timestamp, tolerance_s, now):
        return False
    try:
        key = base64.b64decode(secret.removeprefix(_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw_body, hashlib.sha256).digest()
    matched = False
    for entry in signature_header.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= hmac.compare_digest(expected, candidate)
    return matched
