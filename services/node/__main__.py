"""`python -m services.node`: an edge with a router in its own process, what `switchboard up`
runs on one machine (SWITCHBOARD_ROUTER_IN_EDGE, the default there).

The edge and the router stay two services that never import each other; this module is where
they are put together. The edge's inference requests go to the hosted router without NATS
(libs/contracts/in_process.py); everything else each of them does is unchanged, the router
serving its queue group (the jobs service's calls, other edges) and its health port as ever.
"""

import asyncio

from libs.contracts.config import load_config
from libs.runtime.process import run_service
from services.edge.server import serve as serve_edge
from services.node.hosted_router import HostedRouter


async def serve(stop: asyncio.Event) -> None:
    config = load_config()
    router = HostedRouter(config)
    await router.start()  # first: the edge asks the router for prices as it starts
    try:
        await serve_edge(stop, config, router)
    finally:
        await router.stop()  # after the edge: its last requests are answered and metered


def main() -> None:
    run_service("edge", serve)


if __name__ == "__main__":
    main()
