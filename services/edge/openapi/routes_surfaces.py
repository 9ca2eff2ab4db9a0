"""Route table: the discovery endpoints (services/edge/discovery.py), the live request tail
(tail.py), and the surfaces that are not JSON API, accounted for but left out of the
document with the reason: the MCP transports (mcp/) and the dashboard (dashboard/)."""

from typing import Final

from libs.contracts.http.discovery import SURFACE_NAMES, GatewayHealth, GatewayModels, ProviderList
from services.edge.openapi.table import READ, Answer, Param, Route, ok_json

_NOT_API = "not JSON API"

DISCOVERY_ROUTES: Final = (
    Route(method="GET", path="/v1/gateway/models", operation_id="gatewayModels", tag="models",
          summary="Models per surface (AI Stats Gateway's discovery API)", auth="bearer",
          params=(Param(name="endpoints", where="query",
                        description="Comma-separated surfaces, in the order wanted: "
                                    f"{', '.join(SURFACE_NAMES)} (all by default)."),),
          answers=(ok_json(200, "One catalogue per surface asked for.", GatewayModels),), errors=READ),
    Route(method="GET", path="/v1/providers", operation_id="listProviders", tag="models",
          summary="Configured providers, their models and health", auth="bearer",
          answers=(ok_json(200, "The providers.", ProviderList),), errors=READ),
    Route(method="GET", path="/v1/health", operation_id="gatewayHealth", tag="health",
          summary="The whole gateway's readiness", auth="none",
          description="NATS, the key mirror and every service behind the edge; `degraded` names what is not ok. "
                      "Probed at most once a second per edge.",
          answers=(ok_json(200, "Each component's state.", GatewayHealth),), errors=(400,)),
    Route(method="GET", path="/v1/requests/tail", operation_id="tailRequests", tag="usage",
          summary="A live stream of requests as they finish", auth="admin",
          description="Server-sent events: `ready` once, then one `generation` event (a Generation) per finished "
                      "request, `dropped` when the client read too slowly; a `: keep-alive` comment when idle. "
                      "The stream lasts until the client closes it.",
          params=(Param(name="sub_account", where="query", description="Only this sub-account's requests."),),
          answers=(Answer(status=200, description="The event stream.", kind="sse",
                          types=(("text/event-stream", None),)),),
          errors=(400, 401, 403, 404, 503)),
)

# The MCP transports speak JSON-RPC (MCP's own errors, not the envelope); the dashboard is pages.
EXCLUDED_ROUTES: Final = (
    Route(method="POST", path="/mcp", operation_id="mcpStreamableHttp", tag="meta",
          summary="Model Context Protocol, streamable HTTP transport", auth="bearer", answers=(), errors=(),
          excluded=f"{_NOT_API}: MCP's JSON-RPC transport, described by MCP (docs/mcp.md)"),
    Route(method="GET", path="/mcp/sse", operation_id="mcpSseStream", tag="meta",
          summary="Model Context Protocol, legacy SSE transport: the event stream", auth="bearer", answers=(),
          errors=(), excluded=f"{_NOT_API}: MCP's legacy SSE transport (docs/mcp.md)"),
    Route(method="POST", path="/mcp/message", operation_id="mcpSseMessage", tag="meta",
          summary="Model Context Protocol, legacy SSE transport: client messages", auth="bearer", answers=(),
          errors=(), excluded=f"{_NOT_API}: MCP's legacy SSE transport (docs/mcp.md)"),
    Route(method="GET", path="/mcp/inspect", operation_id="mcpInspector", tag="meta",
          summary="MCP inspector: list the tools and try one in a browser", auth="none", answers=(), errors=(),
          excluded=f"{_NOT_API}: an HTML page"),
    Route(method="GET", path="/dashboard", operation_id="dashboard", tag="meta",
          summary="Usage dashboard: sign in with an admin or sub-account key", auth="none", answers=(), errors=(),
          excluded=f"{_NOT_API}: an HTML page (docs/dashboard.md)"),
    Route(method="GET", path="/dashboard/", operation_id="dashboardSlash", tag="meta",
          summary="Redirects to /dashboard", auth="none", answers=(), errors=(),
          excluded=f"{_NOT_API}: a redirect to the dashboard page"),
    Route(method="GET", path="/dashboard/static/{name}", served_path="/dashboard/static/{name:.+}",
          operation_id="dashboardAsset", tag="meta", summary="The dashboard's scripts, styles and images",
          auth="none", answers=(), errors=(), excluded=f"{_NOT_API}: the dashboard's static files"),
)

ROUTES: Final = (*DISCOVERY_ROUTES, *EXCLUDED_ROUTES)
