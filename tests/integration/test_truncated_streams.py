"""A provider stream that closes cleanly without its end marker (OpenAI: finish_reason and
[DONE]; Anthropic: message_stop; Gemini: finishReason) is a failure on every surface: the
client's stream ends in its surface's error event, the request is metered as a 502 with what
was delivered, and the deployment's health counts the failure.

The simulator's `cut_after=N` directive streams N pieces, then ends the body cleanly."""

from typing import Any

import anthropic
import openai
import pytest

from tests.integration.api import call, generation
from tests.integration.cluster import Cluster, eventually

PROMPT = "one two three four five six"  # answered "Echo: one two three four five six" (7 pieces)
UPSTREAMS = ["sim/gpt-sim", "anthropic/claude-haiku-4-5", "google/gemini-2.5-flash"]


def _failure_recorded(gateway: Cluster, request_id: str, deployment: str, delivered: int) -> None:
    record = generation(gateway, request_id)
    assert (record["status"], record["error_type"]) == (502, "provider_error"), record
    assert record["usage"]["output_units"] == delivered  # metered for what was delivered ...
    assert record["cost"]["total_micros"] == 0  # ... but a broken answer is not charged

    def health() -> dict[str, Any] | None:
        rows = call(gateway, "GET", "/health/providers").json()["data"]
        return next((r for r in rows if r["deployment"] == deployment), None)

    # The one call is one failure: a stream is not counted a success when it opens.
    row = eventually(health, 10)
    assert (row["requests"], row["failures"]) == (1, 1), row


@pytest.mark.parametrize("model", UPSTREAMS)
def test_chat_stream_cut_short_raises_instead_of_ending(gateway: Cluster, model: str) -> None:
    stream = gateway.client().chat.completions.create(
        model=f"{model}+cut_after=3", messages=[{"role": "user", "content": PROMPT}], stream=True)
    request_id = stream.response.headers["X-Request-Id"]
    text = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            assert chunk.choices[0].finish_reason is None
            text += chunk.choices[0].delta.content or ""
    assert text == "Echo: one two"
    assert err.value.body["type"] == "provider_error" and "end marker" in err.value.message
    _failure_recorded(gateway, request_id, f"{model}+cut_after=3", delivered=3)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_messages_stream_cut_short_ends_in_an_anthropic_error_event(gateway: Cluster, model: str) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=gateway.admin_key,
                                 max_retries=0)
    stream = client.messages.create(model=f"{model}+cut_after=2", max_tokens=64, stream=True,
                                    messages=[{"role": "user", "content": PROMPT}])
    request_id = stream.response.headers["X-Request-Id"]
    kinds: list[str] = []
    text = ""
    with pytest.raises(anthropic.APIStatusError) as err:
        for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    assert text == "Echo: one" and "message_stop" not in kinds and "message_delta" not in kinds
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "api_error"
    assert "end marker" in err.value.body["error"]["message"]
    _failure_recorded(gateway, request_id, f"{model}+cut_after=2", delivered=2)


@pytest.mark.parametrize("model", UPSTREAMS)
def test_responses_stream_cut_short_ends_in_response_failed(gateway: Cluster, model: str) -> None:
    stream = gateway.client().responses.create(model=f"{model}+cut_after=4", input=PROMPT, stream=True)
    request_id = stream.response.headers["X-Request-Id"]
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"
    assert "response.completed" not in kinds and "response.incomplete" not in kinds
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Echo: one two three"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert failed.output[0].status == "incomplete"
    assert failed.usage is not None and failed.usage.output_tokens == 4
    _failure_recorded(gateway, request_id, f"{model}+cut_after=4", delivered=4)


def test_a_whole_stream_still_ends_cleanly_and_counts_as_a_success(gateway: Cluster) -> None:
    model = "sim/gpt-sim+ttft=1"  # a deployment of its own, for its health row
    chunks = list(gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    rows = eventually(lambda: [r for r in call(gateway, "GET", "/health/providers").json()["data"]
                               if r["deployment"] == model], 10)
    assert (rows[0]["requests"], rows[0]["failures"]) == (1, 0)
