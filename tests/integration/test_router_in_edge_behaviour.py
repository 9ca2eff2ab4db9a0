"""The behaviour tests of the inference paths again, against a gateway whose edges host the
router (SWITCHBOARD_ROUTER_IN_EDGE=1, services/node/): the same answers,
headers, errors, failover, caching, metering and async jobs (the jobs service calls the edge's
router over NATS) without the bus between edge and router.

The tests are the other modules' own functions, collected here a second time; the module-scoped
`gateway` below takes the place of conftest's for them.
"""

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.integration import (
    test_cache,
    test_chat,
    test_errors,
    test_failover,
    test_jobs_chat,
    test_metering,
    test_surfaces,
)
from tests.integration.cluster import Cluster, cleanup, start_cluster

IN_EDGE = {"SWITCHBOARD_ROUTER_IN_EDGE": "1"}
# The paths where the hand-over differs: whole answers, streams (and their errors and cancels),
# the surfaces' own error events, failover, the cache, metering, jobs calling in over NATS.
_MODULES: tuple[ModuleType, ...] = (test_cache, test_chat, test_errors, test_failover, test_jobs_chat, test_metering,
                                    test_surfaces)
receiver = test_jobs_chat.receiver  # a fixture of that module's tests


@pytest.fixture(scope="module")
def gateway() -> Iterator[Cluster]:
    cluster = start_cluster(routers=0, extra_env=IN_EDGE)
    assert not cluster.routers
    yield cluster
    cleanup(cluster)


globals().update({name: test for module in _MODULES for name, test in vars(module).items()
                  if name.startswith("test_") and callable(test)})
