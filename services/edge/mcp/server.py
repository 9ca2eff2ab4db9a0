"""The MCP server (the official SDK's low-level Server): tools/list and tools/call.

One Server serves both transports. The caller is whatever the transport attached to the
message as its request: the HTTP request on streamable HTTP (its `Authorization` header
already checked by the edge), or the session's Caller on legacy SSE (the key that opened
the stream). Either way, a tool runs as that key and nothing else.
"""

from collections.abc import Mapping
from typing import Any

import mcp_types as types
import msgspec
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError

from services.edge.mcp.loopback import FORWARDED, Loopback
from services.edge.mcp.results import error_result, tool_result
from services.edge.mcp.tools import TOOLS, ApiAnswer, ArgumentsError

NAME = "switchboard"
VERSION = "0.1.0"
INSTRUCTIONS = ("Switchboard is an AI gateway: every tool calls its HTTP API with your key. Find model ids with "
                "list_models or search_models; video, music and 3D generations are async jobs (poll get_job).")


class Caller(msgspec.Struct, frozen=True):
    """A legacy SSE session's identity, attached to each message it relays to the server."""

    headers: dict[str, str]  # lower-case names: the FORWARDED headers of the GET that opened the stream


def caller_of(headers: Mapping[str, str]) -> Caller:
    return Caller({name: headers[name] for name in FORWARDED if headers.get(name)})


def build_server(loopback: Loopback) -> Server[Any]:
    listed = types.ListToolsResult(tools=[spec.tool() for spec in TOOLS])
    by_name = {spec.name: spec for spec in TOOLS}

    async def list_tools(_: ServerRequestContext[Any], __: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return listed

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        spec = by_name.get(params.name)
        if spec is None:  # a protocol error, as the MCP spec says for an unknown tool
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool '{params.name[:100]}'; tools/list names them.")
        headers: Mapping[str, str] | None = getattr(ctx.request, "headers", None)
        if headers is None or not (headers.get("authorization") or headers.get("x-api-key")):
            return error_result("401 authentication_error: this MCP transport carried no API key.")
        arguments = params.arguments or {}
        try:
            call = spec.build(arguments)
        except ArgumentsError as exc:
            return error_result(f"400 invalid_request_error: {exc}")
        answer = call if isinstance(call, ApiAnswer) else await loopback.send(call, headers)
        if spec.refine is not None:
            answer = spec.refine(answer, arguments)
        return tool_result(answer)

    return Server(NAME, version=VERSION, title="Switchboard AI gateway", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)
