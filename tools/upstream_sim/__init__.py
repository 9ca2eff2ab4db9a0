"""Upstream provider simulator: a fake OpenAI-compatible API for tests, benchmarks and load tests.

Start it with ``python -m tools.upstream_sim`` or embed it with :func:`create_app`.
"""

from tools.upstream_sim.app import create_app
from tools.upstream_sim.settings import SimSettings

__all__ = ["SimSettings", "create_app"]
