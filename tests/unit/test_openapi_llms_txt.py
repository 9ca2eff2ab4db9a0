"""llms.txt in the llmstxt.org format: an H1, a `>` summary, H2 sections whose entries are
`- [name](url): notes` links, the routes of the table and the models of the catalog."""

import re

from libs.contracts.http.models import ModelCard, ModelList, Pricing
from services.edge.openapi.document import openapi_path
from services.edge.openapi.llms_txt import render
from services.edge.openapi.registry import ROUTES

BASE = "http://127.0.0.1:8080"
_LINK = re.compile(r"^- \[[^\]]+\]\((http[^)\s]+)\)(: .+)?$")


def _catalog() -> ModelList:
    return ModelList(data=[
        ModelCard(id="sim/gpt-sim", provider="sim", modality="text", capabilities=["chat", "streaming"],
                  pricing=Pricing(input_per_mtok=0.15, output_per_mtok=0.6), context_window=128000),
        ModelCard(id="sim/embed-sim", provider="sim", modality="embedding", pricing=None),
    ])


def test_the_format_is_llmstxt() -> None:
    text = render(ROUTES, _catalog(), BASE)
    lines = text.splitlines()
    assert lines[0] == "# Switchboard"
    assert [line for line in lines if line.startswith("# ")] == ["# Switchboard"]
    assert lines[2].startswith("> ")
    sections = [line for line in lines if line.startswith("## ")]
    assert sections[0] == "## Docs" and sections[-1] == "## Optional" and "## Models" in sections
    body = lines[lines.index("## Docs"):]
    for line in body:
        assert not line or line.startswith("## ") or _LINK.match(line), f"not a link entry: {line!r}"


def test_every_documented_route_and_model_is_listed() -> None:
    text = render(ROUTES, _catalog(), BASE)
    for route in ROUTES:
        if route.excluded is None:
            assert f"[{route.method} {openapi_path(route)}]" in text, route.operation_id
    assert f"- [sim/gpt-sim]({BASE}/v1/models/sim/gpt-sim): text; provider sim; $0.15 in / $0.6 out" in text
    assert "capabilities: chat, streaming" in text
    assert "[sim/embed-sim]" in text and "price not listed" in text
    chat = next(line for line in text.splitlines() if "[POST /v1/chat/completions]" in line)
    assert f"({BASE}/openapi.json#/paths/~1v1~1chat~1completions/post): Create a chat completion (any key)" in chat
    job = next(line for line in text.splitlines() if "[GET /v1/jobs/{id}]" in line)
    assert "#/paths/~1v1~1jobs~1%7Bid%7D/get)" in job


def test_health_and_meta_routes_are_optional() -> None:
    lines = render(ROUTES, _catalog(), BASE).splitlines()
    optional = lines[lines.index("## Optional"):]
    assert any("[GET /healthz]" in line for line in optional)
    assert f"- [POST /mcp]({BASE}/mcp): Model Context Protocol, streamable HTTP transport (any key)" in optional
    assert not any("[POST /v1/chat/completions]" in line for line in optional)


def test_a_catalog_that_cannot_be_read_is_said_so() -> None:
    assert "could not be read" in render(ROUTES, None, BASE)
    assert "no provider is enabled" in render(ROUTES, ModelList(data=[]), BASE)
