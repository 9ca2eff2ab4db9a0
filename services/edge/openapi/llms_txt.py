"""`/llms.txt`: the gateway's capability map in the llmstxt.org format (an H1, a `>`
summary, then H2 sections of `- [name](url): notes` links), from the route table and the
model catalog."""

from collections.abc import Sequence
from itertools import groupby
from typing import Final

from libs.contracts.http.models import ModelCard, ModelList
from services.edge.openapi.document import TAGS, openapi_path
from services.edge.openapi.table import AUTH_NOTES, Route

_SUMMARY = ("Switchboard is a self-hosted AI gateway: one OpenAI-compatible API (and Anthropic's Messages API) in "
            "front of every model provider, with sub-accounts and scoped keys, spend caps, cost attribution by tag "
            "and by sub-account, failover, response caching, async jobs with signed webhooks, batches, evals and "
            "replays.")
# Sections whose routes an agent needs least: llmstxt.org's "Optional" section.
_OPTIONAL_TAGS = ("health", "meta")


_AUTH: Final = {"bearer": "any key", "admin": "admin key", "read-usage": "read-usage key", "signed": "signed URL",
         "none": "no key"}


def _pointer(route: Route) -> str:
    """A JSON pointer to the operation (RFC 6901: `/` as `~1`), URI-encoded for a fragment."""
    path = openapi_path(route).replace("~", "~0").replace("/", "~1").replace("{", "%7B").replace("}", "%7D")
    return f"/paths/{path}/{route.method.lower()}"


def _route_line(route: Route, base: str) -> str:
    note = f"{route.summary} ({_AUTH[route.auth]})"
    return f"- [{route.method} {openapi_path(route)}]({base}/openapi.json#{_pointer(route)}): {note}"


def _price(card: ModelCard) -> str:
    pricing = card.pricing
    if pricing is None or (pricing.input_per_mtok is None and pricing.output_per_mtok is None):
        return "price not listed"
    given = [f"${value:g} {side}" for side, value in (("in", pricing.input_per_mtok), ("out", pricing.output_per_mtok))
             if value is not None]
    return " / ".join(given) + " per million units"


def _model_line(card: ModelCard, base: str) -> str:
    notes = [card.modality, f"provider {card.provider}" if card.provider else "", _price(card)]
    if card.context_window:
        notes.append(f"{card.context_window} context")
    if card.capabilities:
        notes.append("capabilities: " + ", ".join(card.capabilities))
    return f"- [{card.id}]({base}/v1/models/{card.id}): " + "; ".join(n for n in notes if n)


def render(routes: Sequence[Route], models: ModelList | None, base: str) -> str:
    documented = [r for r in routes if r.excluded is None]
    lines = [
        "# Switchboard", "", f"> {_SUMMARY}", "",
        f"Base URL: {base}/v1 (set it as an OpenAI or Anthropic SDK's base_url). Authenticate with "
        "`Authorization: Bearer <key>` (or `x-api-key`). Every error is "
        '`{"error": {"message", "type", "code", "param"}}` with `code` the HTTP status. Attribute cost with '
        "the `x-aig-tag` header; every answer carries `X-Request-Id`, and inference answers `X-Model`, "
        "`X-Provider`, `X-Cost-Cents` and `X-Latency-Ms`.", "",
        "Who may call what: " + "; ".join(f"{_AUTH[k]}: {note}" for k, note in AUTH_NOTES.items()
                                          if k != "none") + ".", "",
        "## Docs", "",
        f"- [OpenAPI 3.1 document]({base}/openapi.json): every route with its parameters, bodies, answers, "
        "headers, errors and the webhook event payloads",
        f"- [Models]({base}/v1/models): the live catalog as JSON (`?modality=` to filter)",
    ]
    optional: list[str] = []
    by_tag = sorted(documented, key=lambda r: list(TAGS).index(r.tag) if r.tag in TAGS else len(TAGS))
    for tag, group in groupby(by_tag, key=lambda r: r.tag):
        block = ["", f"## {tag}: {TAGS.get(tag, tag)}", "", *(_route_line(r, base) for r in group)]
        (optional if tag in _OPTIONAL_TAGS else lines).extend(block)
    lines += ["", "## Models", ""]
    if models is None:
        lines.append(f"- [Models]({base}/v1/models): the catalog could not be read just now; ask GET /v1/models")
    elif not models.data:
        lines.append(f"- [Models]({base}/v1/models): no provider is enabled on this gateway yet")
    else:
        lines += [_model_line(card, base) for card in models.data]
    # Pages and transports that are not in the document, but an agent may want (the MCP endpoint).
    extra = [f"- [{r.method} {r.path}]({base}{r.path}): {r.summary} ({_AUTH[r.auth]})" for r in routes
             if r.excluded is not None and "{" not in r.path]
    lines += ["", "## Optional", "", *(line for line in optional if line and not line.startswith("## ")), *extra]
    return "\n".join(lines) + "\n"
