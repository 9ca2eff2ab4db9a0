"""Fixtures: one shared gateway for behaviour tests, private ones for tests that
kill or restart parts of it."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conformance.openai_schemas import OpenAISchemas
from tests.integration.cluster import Cluster, cleanup, start_cluster

if TYPE_CHECKING:
    from tests.integration.containers import Containers


@pytest.fixture(scope="session")
def gateway() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cleanup(cluster)


@pytest.fixture
def private_gateway() -> Iterator[Cluster]:
    cluster = start_cluster()
    yield cluster
    cleanup(cluster)


@pytest.fixture(scope="session")
def openai_schemas() -> OpenAISchemas:
    """OpenAI's published schemas (tests/conformance/), read once per session."""
    return OpenAISchemas.load()


@pytest.fixture
def containers() -> Iterator["Containers"]:
    """Containers from the images `make image` builds, removed at the test's end (containers.py)."""
    from tests.integration.containers import Containers, require_images

    require_images()
    started = Containers()
    yield started
    started.remove_all()
