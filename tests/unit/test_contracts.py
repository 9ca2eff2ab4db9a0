"""Wire contracts: HTTP request validation, bus messages, error envelope, keys, config file."""

import hashlib
import re

import msgspec
import pytest

from libs.contracts.bus import inference as bus
from libs.contracts.config import (
    EdgeConfig,
    ModelConfig,
    ProviderConfig,
    RouterConfig,
    SwitchboardConfig,
    load_config,
)
from libs.contracts.errors import ErrorBody, error_json
from libs.contracts.http.chat import ChatCompletionRequest
from libs.contracts.http.embeddings import EmbeddingsRequest
from libs.contracts.keys import KEY_PREFIX, ApiKeyRecord, decode_record, encode_record, hash_key, mint_key

RICH_CHAT = {
    "model": "openai/gpt-4o",
    "messages": [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ],
    "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "look"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
    "stop": ["\n\n", "END"],
    "n": 2,
    "seed": 42,
    "max_completion_tokens": 256,
    "temperature": 0.7,
    "top_p": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
    "logit_bias": {"50256": -100},
    "some_future_field": {"nested": [1, 2, 3]},
}


def _chat(**overrides: object) -> bytes:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], **overrides}
    return msgspec.json.encode(body)


def _chat_error(raw: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.json.decode(raw, type=ChatCompletionRequest)
    return str(info.value)


# --- chat ------------------------------------------------------------------------------------

def test_chat_accepts_rich_body_and_ignores_unknown_fields() -> None:
    req = msgspec.json.decode(msgspec.json.encode(RICH_CHAT), type=ChatCompletionRequest)
    assert req.model == "openai/gpt-4o"
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert isinstance(req.messages[1].content, list)
    assert req.messages[1].content[1]["type"] == "image_url"
    assert req.messages[2].tool_calls[0]["id"] == "call_1"
    assert req.messages[3].tool_call_id == "call_1"
    assert req.tools[0]["function"]["name"] == "look"
    assert req.tool_choice == {"type": "function", "function": {"name": "look"}}
    assert req.response_format.type == "json_schema"
    assert req.response_format.json_schema["name"] == "out"
    assert req.stop == ["\n\n", "END"]
    assert (req.n, req.seed, req.max_completion_tokens) == (2, 42, 256)
    assert req.stream is True and req.stream_options.include_usage is True
    assert not hasattr(req, "some_future_field")


def test_chat_accepts_string_stop_and_tool_choice() -> None:
    req = msgspec.json.decode(_chat(stop="END", tool_choice="auto"), type=ChatCompletionRequest)
    assert req.stop == "END" and req.tool_choice == "auto"


@pytest.mark.parametrize(("raw", "pattern"), [
    (msgspec.json.encode({"model": "m"}), r"missing required field `messages`"),
    (_chat(messages=[]), r"length >= 1 - at `\$\.messages`"),
    (_chat(messages=[{"role": "robot", "content": "x"}]), r"Invalid enum value 'robot' - at `\$\.messages\[0\]\.role`"),
    (_chat(temperature=3), r"<= 2(\.0)? - at `\$\.temperature`"),
    (_chat(n=0), r">= 1 - at `\$\.n`"),
    (_chat(stream="yes"), r"got `str` - at `\$\.stream`"),
    (_chat(model=""), r"length >= 1 - at `\$\.model`"),
    (_chat(max_completion_tokens=0), r">= 1 - at `\$\.max_completion_tokens`"),
    (_chat(response_format={"type": "yaml"}), r"Invalid enum value 'yaml' - at `\$\.response_format\.type`"),
], ids=["missing-messages", "empty-messages", "bad-role", "temperature-3", "n-0", "stream-type",
        "empty-model", "max-completion-0", "bad-response-format"])
def test_chat_rejects_with_field_path(raw: bytes, pattern: str) -> None:
    assert re.search(pattern, _chat_error(raw))


# --- embeddings ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
                         ids=["string", "strings", "token-ids", "token-id-lists"])
def test_embeddings_accepts_input_shapes(value: object) -> None:
    raw = msgspec.json.encode({"model": "openai/text-embedding-3-small", "input": value,
                               "encoding_format": "base64", "dimensions": 8})
    req = msgspec.json.decode(raw, type=EmbeddingsRequest)
    assert req.input == value
    assert (req.encoding_format, req.dimensions) == ("base64", 8)


@pytest.mark.parametrize(("extra", "pattern"), [
    ({"input": ""}, r"length >= 1 - at `\$\.input`"),
    ({"input": []}, r"length >= 1 - at `\$\.input`"),
    ({"input": "x", "encoding_format": "hex"}, r"Invalid enum value 'hex' - at `\$\.encoding_format`"),
    ({"input": "x", "dimensions": 0}, r">= 1 - at `\$\.dimensions`"),
    ({}, r"missing required field `input`"),
], ids=["empty-string", "empty-list", "bad-encoding", "zero-dimensions", "missing-input"])
def test_embeddings_rejects(extra: dict[str, object], pattern: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=pattern):
        msgspec.json.decode(msgspec.json.encode({"model": "m", **extra}), type=EmbeddingsRequest)


# --- bus -------------------------------------------------------------------------------------

PRINCIPAL = bus.Principal("acct_1", "key_1", "sub_1")
META = bus.DispatchMeta("openai/gpt-4o", "openai", 12.5, bus.Usage(10, 20, 3))


def test_inference_request_round_trips() -> None:
    req = bus.InferenceRequest(request_id="r1", operation=bus.OP_CHAT, model="openai/gpt-4o",
                               body=b'{"model":"openai/gpt-4o","x":0.70}', principal=PRINCIPAL,
                               stream=True, include_usage=True, tag="t", traceparent="00-abc-def-01")
    assert bus.decode_request(bus.encode(req)) == req
    minimal = bus.InferenceRequest("r2", bus.OP_EMBEDDINGS, "m", b"{}", bus.Principal("a", "k"))
    decoded = bus.decode_request(bus.encode(minimal))
    assert decoded == minimal and decoded.principal.subaccount_id is None and decoded.stream is False


@pytest.mark.parametrize("message", [
    bus.Reply(200, b'{"id":"x"}', META, "application/json"),
    bus.Reply(201, b"raw", None, "text/plain"),
    bus.StreamStart(META),
    bus.StreamChunk(b"data: {}\n\n"),
    bus.StreamEnd(bus.DispatchMeta("m", "p")),
    bus.Failure(ErrorBody("slow down", "rate_limit_error", 429, "model"), 3, META),
    bus.Failure(ErrorBody("boom", "provider_error", 502)),
], ids=["reply", "reply-no-meta", "start", "chunk", "end", "failure", "failure-bare"])
def test_bus_reply_round_trips_to_its_own_class(message: object) -> None:
    decoded = bus.decode_reply(bus.encode(message))
    assert type(decoded) is type(message)
    assert decoded == message


def test_bus_reply_rejects_an_unknown_tag() -> None:
    with pytest.raises(msgspec.ValidationError):
        bus.decode_reply(msgspec.msgpack.encode(["nope", 1]))


# --- errors ----------------------------------------------------------------------------------

def test_error_json_envelope_shape() -> None:
    raw = error_json(ErrorBody("bad temperature", "invalid_request_error", 400, "temperature"))
    assert msgspec.json.decode(raw) == {"error": {"message": "bad temperature", "type": "invalid_request_error",
                                                  "code": 400, "param": "temperature"}}
    bare = msgspec.json.decode(error_json(ErrorBody("x", "internal_error", 500)))
    assert list(bare) == ["error"]
    assert bare["error"] == {"message": "x", "type": "internal_error", "code": 500, "param": None}


# --- keys ------------------------------------------------------------------------------------

def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("sk-aig-abc") == hashlib.sha256(b"sk-aig-abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key("x"))


def test_mint_key_prefix_and_uniqueness() -> None:
    keys = {mint_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert key.startswith(KEY_PREFIX) and KEY_PREFIX == "sk-aig-"
        assert len(key) > len(KEY_PREFIX) + 32


def test_api_key_record_round_trips() -> None:
    record = ApiKeyRecord(key_id="key_1", account_id="acct", scopes=("inference", "admin"),
                          subaccount_id="sub", name="ci", disabled=True, expires_at=1_900_000_000,
                          created_at=1_700_000_000)
    assert decode_record(encode_record(record)) == record
    default = ApiKeyRecord(key_id="k", account_id="a")
    assert msgspec.json.decode(encode_record(default)) == {"key_id": "k", "account_id": "a"}
    assert decode_record(encode_record(default)).scopes == ("inference",)


# --- config ----------------------------------------------------------------------------------

def test_load_config_without_path_gives_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_CONFIG", raising=False)
    assert load_config() == SwitchboardConfig()
    assert load_config().providers == [] and load_config().edge == EdgeConfig()


def test_load_config_decodes_every_section(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "switchboard.toml"
    path.write_text(
        '[edge]\nport = 8081\nhost = "0.0.0.0"\nrequest_timeout_s = 150.5\nmax_body_bytes = 1048576\n'
        "[router]\nconnect_timeout_s = 2\nread_timeout_s = 60\nmax_connections_per_provider = 32\n"
        '[[providers]]\nslug = "local"\nbase_url = "http://127.0.0.1:8000/v1"\napi_key_env = "LOCAL_KEY"\n'
        "read_timeout_s = 300\n"
        '[[models]]\nid = "local/llama"\nupstream = "llama-3"\ncapabilities = ["chat"]\n'
        "input_per_mtok = 0.1\noutput_per_mtok = 0.2\n"
    )
    config = load_config(str(path))
    assert config.edge == EdgeConfig(port=8081, host="0.0.0.0", request_timeout_s=150.5, max_body_bytes=1048576)
    assert config.router == RouterConfig(connect_timeout_s=2.0, read_timeout_s=60.0, max_connections_per_provider=32)
    assert config.providers == [ProviderConfig(slug="local", base_url="http://127.0.0.1:8000/v1",
                                               api_key_env="LOCAL_KEY", read_timeout_s=300.0)]
    assert config.models == [ModelConfig(id="local/llama", upstream="llama-3", capabilities=["chat"],
                                         input_per_mtok=0.1, output_per_mtok=0.2)]
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(path))
    assert load_config() == config


@pytest.mark.parametrize(("text", "field"), [
    ("[edge]\nprot = 8080\n", "prot"),
    ('[[providers]]\nslug = "x"\napi_key = "secret"\n', "api_key"),
    ("[telemetry]\non = true\n", "telemetry"),
])
def test_load_config_unknown_field_exits_with_message(tmp_path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as info:
        load_config(str(path))
    message = str(info.value.code)
    assert message.startswith(f"switchboard: cannot load config {path}")
    assert f"unknown field `{field}`" in message


def test_load_config_missing_file_exits(tmp_path) -> None:
    with pytest.raises(SystemExit, match="cannot load config"):
        load_config(str(tmp_path / "absent.toml"))
