"""Edge request validation (_validate, _param_of) and API-key authentication (KeyStore.authenticate)."""

import time

import msgspec
import pytest

from libs.contracts import errors
from libs.contracts.bus.inference import Principal
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from libs.contracts.keys import SCOPE_ADMIN, SCOPE_INFERENCE, SCOPE_READ_USAGE, ApiKeyRecord, hash_key
from services.edge.auth import KeyEntry, KeyStore
from services.edge.errors import GatewayError
from services.edge.inference import _decode_chat, _decode_embeddings
from services.edge.validation import _param_of, bounded_int
from services.edge.validation import validate as _validate


def _chat(**fields: object) -> bytes:
    return msgspec.json.encode({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                                **fields})


def _msgspec_error(raw: bytes, type_: type = ChatCompletionRequest) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(raw, type=type_)
    return str(info.value)


# --- _param_of -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "param"), [
    (_chat(temperature=3), "temperature"),
    (_chat(n=0), "n"),
    (_chat(stream="yes"), "stream"),
    (_chat(messages=[]), "messages"),
    (_chat(messages=[{"role": "robot"}]), "messages[0].role"),
    (_chat(messages=[{"content": "no role"}]), "messages[0].role"),
    (_chat(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
    (msgspec.json.encode({"model": "m"}), "messages"),
    (msgspec.json.encode({"messages": [{"role": "user"}], "model": ""}), "model"),
], ids=["temperature", "n", "stream", "empty-messages", "role", "nested-missing", "nested-struct",
        "missing-messages", "empty-model"])
def test_param_of_real_chat_errors(raw: bytes, param: str) -> None:
    assert _param_of(_msgspec_error(raw)) == param


def test_param_of_real_embeddings_error() -> None:
    message = _msgspec_error(b'{"model":"m","input":"x","encoding_format":"hex"}', EmbeddingsRequest)
    assert _param_of(message) == "encoding_format"


@pytest.mark.parametrize("raw", [b"[]", b'"just a string"', b"42"])
def test_param_of_is_none_for_root_errors(raw: bytes) -> None:
    assert _param_of(_msgspec_error(raw)) is None


# --- _validate -------------------------------------------------------------------------------

def _gateway_error(decode: object, body: bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        _validate(decode, body)
    exc = info.value
    assert (exc.status, exc.body.code, exc.body.type) == (400, 400, errors.INVALID_REQUEST)
    return exc


def test_validate_returns_the_parsed_request() -> None:
    parsed = _validate(_decode_chat, _chat(stream=True))
    assert isinstance(parsed, ChatCompletionRequest) and parsed.stream is True
    emb = _validate(_decode_embeddings, b'{"model":"openai/text-embedding-3-small","input":["a"]}')
    assert isinstance(emb, EmbeddingsRequest) and emb.input == ["a"]


def test_validate_empty_body() -> None:
    exc = _gateway_error(_decode_chat, b"")
    assert "body is empty" in exc.body.message and exc.body.param is None


@pytest.mark.parametrize("body", [b"{", b'{"model": "m",}', b"not json", _chat() + b" trailing"])
def test_validate_malformed_json(body: bytes) -> None:
    exc = _gateway_error(_decode_chat, body)
    assert exc.body.message.startswith("Malformed JSON body")
    assert exc.body.param is None


@pytest.mark.parametrize(("body", "param"), [
    (_chat(temperature=3), "temperature"),
    (msgspec.json.encode({"model": "m"}), "messages"),
    (_chat(messages=[{"role": "robot"}]), "messages[0].role"),
])
def test_validate_schema_violation_names_param(body: bytes, param: str) -> None:
    exc = _gateway_error(_decode_chat, body)
    assert exc.body.message.startswith("Invalid request body: ")
    assert exc.body.param == param
    assert param.split("[")[0] in exc.body.message


def test_validate_embeddings_schema_violation() -> None:
    exc = _gateway_error(_decode_embeddings, b'{"model":"m","input":[]}')
    assert exc.body.param == "input"


def test_validate_wrong_root_type_is_schema_error_without_param() -> None:
    exc = _gateway_error(_decode_chat, b"[]")
    assert exc.body.message.startswith("Invalid request body: ") and exc.body.param is None


# --- KeyStore.authenticate -------------------------------------------------------------------

VALID = "sk-aig-valid"
READER = "sk-aig-reader"
DISABLED = "sk-aig-disabled"
EXPIRED = "sk-aig-expired"
FUTURE = "sk-aig-future"


@pytest.fixture
def store() -> KeyStore:
    """A KeyStore whose mirror is filled the way its KV watch fills it (sha256 hex -> KeyEntry)."""
    records = {
        VALID: ApiKeyRecord(key_id="key_ok", account_id="acct", subaccount_id="sub",
                            scopes=(SCOPE_INFERENCE, SCOPE_READ_USAGE)),
        READER: ApiKeyRecord(key_id="key_reader", account_id="acct", scopes=(SCOPE_READ_USAGE,)),
        DISABLED: ApiKeyRecord(key_id="key_off", account_id="acct", disabled=True),
        EXPIRED: ApiKeyRecord(key_id="key_old", account_id="acct", expires_at=int(time.time()) - 1),
        FUTURE: ApiKeyRecord(key_id="key_new", account_id="acct", expires_at=int(time.time()) + 3600),
    }
    keys = KeyStore()
    for plaintext, record in records.items():
        keys.mirror.entries[hash_key(plaintext)] = KeyEntry(
            record, Principal(record.account_id, record.key_id, record.subaccount_id))
    return keys


def _auth_error(store: KeyStore, authorization: str | None, api_key: str | None = None,
                scope: str = SCOPE_INFERENCE) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        store.authenticate(authorization, api_key, scope=scope)
    return info.value


def test_valid_bearer_returns_principal(store: KeyStore) -> None:
    assert store.authenticate(f"Bearer {VALID}").principal == Principal("acct", "key_ok", "sub")
    assert store.authenticate(f"bearer   {VALID}  ").principal == Principal("acct", "key_ok", "sub")


def test_x_api_key_header_alternative(store: KeyStore) -> None:
    assert store.authenticate(None, VALID).principal == Principal("acct", "key_ok", "sub")


def test_future_expiry_is_still_valid(store: KeyStore) -> None:
    assert store.authenticate(f"Bearer {FUTURE}").principal.key_id == "key_new"


@pytest.mark.parametrize(("authorization", "api_key", "needle"), [
    (None, None, "Missing API key"),
    ("", None, "Missing API key"),
    (f"Basic {VALID}", None, "Missing API key"),
    (VALID, None, "Missing API key"),
    ("Bearer ", None, "Missing API key"),
    ("Bearer sk-aig-nope", None, "Invalid API key"),
    (None, "sk-aig-nope", "Invalid API key"),
    (f"Bearer {DISABLED}", None, "disabled or expired"),
    (f"Bearer {EXPIRED}", None, "disabled or expired"),
])
def test_authentication_failures_are_401(store: KeyStore, authorization: str | None, api_key: str | None,
                                         needle: str) -> None:
    exc = _auth_error(store, authorization, api_key)
    assert (exc.status, exc.body.code, exc.body.type) == (401, 401, errors.AUTHENTICATION)
    assert needle in exc.body.message


def test_missing_scope_is_403(store: KeyStore) -> None:
    exc = _auth_error(store, f"Bearer {READER}")
    assert (exc.status, exc.body.type) == (403, errors.PERMISSION)
    assert "'inference' scope" in exc.body.message
    admin = _auth_error(store, f"Bearer {VALID}", scope=SCOPE_ADMIN)
    assert admin.status == 403 and "'admin' scope" in admin.body.message


def test_other_scope_granted(store: KeyStore) -> None:
    assert store.authenticate(f"Bearer {READER}", scope=SCOPE_READ_USAGE).principal == Principal("acct", "key_reader")


def test_empty_store_rejects_everything() -> None:
    exc = _auth_error(KeyStore(), f"Bearer {VALID}")
    assert exc.status == 401 and "Invalid API key" in exc.body.message


def test_check_reads_authorization_then_x_api_key(store: KeyStore) -> None:
    assert store.check({"Authorization": f"Bearer {VALID}"}).principal.key_id == "key_ok"
    assert store.check({"x-api-key": VALID}).principal.key_id == "key_ok"


def test_token_cache_is_dropped_when_the_mirror_changes(store: KeyStore) -> None:
    assert store.check({"Authorization": f"Bearer {VALID}"}).principal.key_id == "key_ok"
    store.mirror.entries.pop(hash_key(VALID))
    store.mirror._changed()  # what the watch does after applying a deletion
    assert _auth_error(store, f"Bearer {VALID}").status == 401


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", 1), ("100", 100), ("007", 7), ("0", None), ("101", None), ("", None), ("-1", None), ("1e2", None),
    (" 5", None), ("\u00b2", None), ("\u0663", None), ("9" * 5000, None),  # '²' and 5000 digits were 500s
])
def test_bounded_int(raw: str, expected: int | None) -> None:
    assert bounded_int(raw, 1, 100) == expected
