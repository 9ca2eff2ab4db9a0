"""The HTTP API of this very edge, called on loopback with the MCP caller's own key.

Going through the public API (rather than the bus) keeps auth, rate limits, spend caps,
metering and tenancy exactly the HTTP API's: a tool can do nothing its key could not do
with curl. The few headers that steer a request (tag, routing, cache) are passed on
from the MCP request, so an MCP client configured with `x-aig-tag` is attributed too.
"""

from collections.abc import Mapping

import aiohttp

from libs.contracts import errors
from libs.contracts.errors import ErrorBody, error_json
from services.edge.mcp.tools import ApiAnswer, ApiCall
from services.edge.settings import EdgeSettings

# The key, and what shapes the answer: the tag, routing and cache headers, and Host, which the
# links in answers (a job's result_url) are built from, so they point where the client called.
FORWARDED = ("authorization", "x-api-key", "host", "x-aig-tag", "x-routing", "x-cache", "traceparent")
_ANY_HOST = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
_MARGIN_S = 10.0  # past the edge's own request timeout, so its 504 (not ours) is what the caller sees


def loopback_url(settings: EdgeSettings) -> str:
    host = _ANY_HOST.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


class Loopback:
    def __init__(self, settings: EdgeSettings) -> None:
        self.base_url = loopback_url(settings)
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s + _MARGIN_S)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # No pool limit: each call is a tool call some client waits on, bounded by the edge's own limits.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout,
                                              auto_decompress=True)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, call: ApiCall, caller: Mapping[str, str]) -> ApiAnswer:
        assert self._session is not None, "Loopback.start() first"
        headers = {name: caller[name] for name in FORWARDED if caller.get(name)}
        if call.body is not None:
            headers["content-type"] = "application/json"
        try:
            async with self._session.request(call.method, self.base_url + call.path, params=call.query or None,
                                             data=call.body, headers=headers) as response:
                return ApiAnswer(response.status, response.content_type, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ApiAnswer(503, "application/json", error_json(ErrorBody(
                f"The gateway could not serve this tool call: {type(exc).__name__}; retry shortly.",
                errors.UNAVAILABLE, 503)))
