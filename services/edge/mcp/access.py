"""Who may open an MCP connection: any valid key of the HTTP API.

The connection itself only needs a key that works; what each tool may do is decided
by the endpoint it calls (a usage-only key can read reports, not chat), exactly as
over plain HTTP. Errors are the edge's own OpenAI-shaped 401/403.
"""

from aiohttp import web

from libs.contracts.keys import SCOPE_INFERENCE, SCOPE_READ_USAGE
from services.edge.auth import KeyEntry
from services.edge.errors import GatewayError
from services.edge.state import EDGE


def authenticate(request: web.Request) -> KeyEntry:
    keys = request.app[EDGE].keys
    try:
        return keys.check(request.headers, SCOPE_INFERENCE)
    except GatewayError as exc:
        if exc.status != 403:
            raise
    return keys.check(request.headers, SCOPE_READ_USAGE)
