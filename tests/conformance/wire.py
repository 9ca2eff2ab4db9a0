"""What the gateway put on the wire, for conformance checks: raw JSON bodies and every server-sent
event as sent. The SDKs parse leniently (a missing field becomes None), so they would hide exactly
what these tests look for."""

import json
from typing import Any, NamedTuple

import httpx

from tests.conformance.openai_schemas import ERROR_CODE, OpenAISchemas

TIMEOUT_S = 20.0
DONE = "[DONE]"


class SseEvent(NamedTuple):
    name: str | None  # the `event:` line, when the surface names its events
    data: Any  # the decoded `data:` JSON, or DONE


def parse_sse(lines: list[str]) -> list[SseEvent]:
    """Events from SSE lines; a `data:` line that is not JSON (other than [DONE]) fails the test."""
    events: list[SseEvent] = []
    name: str | None = None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            payload = line[5:].strip()
            events.append(SseEvent(name, DONE if payload == DONE else json.loads(payload)))
            name = None
        else:
            assert line == "" or line.startswith(":"), f"not an SSE line: {line!r}"
    return events


def stream(base_url: str, key: str, path: str, body: dict[str, Any],
           headers: dict[str, str] | None = None) -> tuple[httpx.Response, list[SseEvent]]:
    """POST a streaming request; the response (read) and its events."""
    sent = {"Authorization": f"Bearer {key}", **(headers or {})}
    with httpx.stream("POST", f"{base_url}{path}", json={**body, "stream": True}, headers=sent,
                      timeout=TIMEOUT_S) as response:
        lines = list(response.iter_lines())
    assert response.status_code == 200, lines[:3]
    assert response.headers["content-type"].startswith("text/event-stream")
    return response, parse_sse(lines)


def check_error(schemas: OpenAISchemas, body: Any, status: int) -> None:
    """OpenAI's ErrorResponse, but for the one deliberate difference: `code` is the HTTP status."""
    schemas.check("ErrorResponse", body, deviations=[ERROR_CODE])
    assert body["error"]["code"] == status, body
