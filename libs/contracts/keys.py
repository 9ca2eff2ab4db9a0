"""API keys as stored in the KV bucket `subjects.KV_API_KEYS`.

Only the SHA-256 of a key is stored (hex, used as the KV key); the plaintext is
shown once when minted. Every edge replica mirrors the bucket through a KV watch.
"""

import hashlib
import secrets
from typing import Final

import msgspec

KEY_PREFIX: Final = "sk-aig-"
SCOPE_INFERENCE: Final = "inference"
SCOPE_READ_USAGE: Final = "read-usage"
SCOPE_ADMIN: Final = "admin"
ALL_SCOPES: Final = (SCOPE_INFERENCE, SCOPE_READ_USAGE, SCOPE_ADMIN)
ROOT_ACCOUNT: Final = "root"
ADMIN_KEY_ID: Final = "key_admin"


class ApiKeyRecord(msgspec.Struct, omit_defaults=True):
    key_id: str
    account_id: str
    scopes: tuple[str, ...] = (SCOPE_INFERENCE,)
    subaccount_id: str | None = None
    name: str = ""
    disabled: bool = False
    expires_at: int | None = None  # unix seconds
    created_at: int = 0


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def mint_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(ApiKeyRecord).decode
