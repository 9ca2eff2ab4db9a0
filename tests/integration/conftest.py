"""Fixtures: one shared gateway for behaviour tests, private ones for tests that
kill or restart parts of it."""

from collections.abc import Iterator

import pytest

from tests.conformance.openai_schemas import OpenAISchemas
from tests.integration.cluster import Cluster, cleanup, start_cluster


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
