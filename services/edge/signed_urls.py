"""HMAC-signed download URLs: a key-less link to one job result (or uploaded file) until a deadline.

Every edge replica must verify what any other minted, so the key is shared: the operator's
SWITCHBOARD_URL_SIGNING_KEY, else one random key created once in KV `sb_gateway_secrets`
(`kv.create`: of two edges starting together, one creates it and both use that one).
"""

import hashlib
import hmac
import secrets
import time
from typing import Final
from urllib.parse import urlencode

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError

from libs.contracts import subjects
from libs.runtime.kv_mirror import open_bucket

SECRET_KEY: Final = "url_signing"
DEFAULT_EXPIRES_IN_S: Final = 3600
MAX_EXPIRES_IN_S: Final = 7 * 24 * 3600
KIND_JOB: Final = "jobs"
KIND_FILE: Final = "files"


async def load_key(js: JetStreamContext, configured: str | None) -> bytes:
    if configured:
        return configured.encode()
    kv = await open_bucket(js, subjects.KV_GATEWAY_SECRETS)
    try:
        await kv.create(SECRET_KEY, secrets.token_hex(32).encode())
    except KeyWrongLastSequenceError:
        pass  # another edge (or an earlier start) made it: use that one
    entry = await kv.get(SECRET_KEY)
    assert entry.value, "empty URL signing key in KV"
    return entry.value


class UrlSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, kind: str, account_id: str, target: str, filename: str, expires: int) -> str:
        # Length-prefixed fields: no two different tuples sign the same message.
        message = b"".join(len(p).to_bytes(4, "big") + p
                           for p in (b"v1", kind.encode(), account_id.encode(), target.encode(),
                                     filename.encode(), str(expires).encode()))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def query(self, kind: str, account_id: str, target: str, filename: str, expires: int) -> str:
        signature = self.signature(kind, account_id, target, filename, expires)
        return urlencode({"account": account_id, "expires": expires, "signature": signature})

    def valid(self, kind: str, account_id: str, target: str, filename: str, expires: str, signature: str,
              now: float | None = None) -> bool:
        """True only for an untampered, unexpired link."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:  # int() refuses '²'
            return False
        expected = self.signature(kind, account_id, target, filename, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return False
        return int(expires) > (time.time() if now is None else now)
