"""`python -m services.edge`: the HTTP edge."""

import asyncio

from libs.contracts.config import load_config
from libs.runtime.process import run_service
from services.edge.server import serve as serve_edge


async def serve(stop: asyncio.Event) -> None:
    await serve_edge(stop, load_config())


def main() -> None:
    run_service("edge", serve)


if __name__ == "__main__":
    main()
