"""The gateway run from its image, through testcontainers (`make image` builds the images).

Containers share the host's network (no bridge on the test machines) and bind to 127.0.0.1.
Whether the container tests run: always when a Docker engine answers and the images exist;
with SWITCHBOARD_CONTAINER_TESTS=required (as `.ci/run` sets it) a missing engine or image is
a failure, never a skip.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

# testcontainers' reaper is an image of its own, which cannot be pulled here; tests remove
# their containers themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer

IMAGE = os.environ.get("SWITCHBOARD_IMAGE", "switchboard:dev")
NATS_IMAGE = os.environ.get("SWITCHBOARD_NATS_IMAGE", "switchboard-nats:dev")
REQUIRED = os.environ.get("SWITCHBOARD_CONTAINER_TESTS") == "required"


def require_images() -> None:
    """Skip (or, when required, fail) unless a Docker engine answers and both images exist."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        for image in (IMAGE, NATS_IMAGE):
            client.images.get(image)
    except Exception as exc:
        reason = f"container tests need a Docker engine and the images `make image` builds: {exc!r}"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Containers:
    """Containers started by one test, removed together at its end."""

    started: list[DockerContainer] = field(default_factory=list)

    def run(self, image: str, command: str, env: dict[str, str] | None = None,
            volumes: list[tuple[str, str, str]] | None = None) -> DockerContainer:
        # Restarted when it exits on an error, as Kubernetes and compose do: a service that starts
        # while JetStream is still electing leaders may time out and exit, and must come back.
        container = DockerContainer(image, command=command, env=env or {}, volumes=volumes, network_mode="host",
                                    restart_policy={"Name": "on-failure", "MaximumRetryCount": 5})
        container.start()
        self.started.append(container)
        return container

    def logs(self) -> str:
        out = []
        for container in self.started:
            try:
                wrapped = container.get_wrapped_container()
                wrapped.reload()
                state = wrapped.attrs["State"]
                stdout, stderr = container.get_logs()
                out.append(f"--- {container.image} {container._command} ({state['Status']}, exit {state['ExitCode']})\n"
                           f"{(stdout + stderr).decode()[-3000:]}")
            except Exception as exc:  # gone already
                out.append(f"--- {container.image}: {exc!r}")
        return "\n".join(out)

    def remove_all(self) -> None:
        for container in reversed(self.started):
            try:
                container.stop()
            except Exception:  # removed by the test already
                pass
        self.started.clear()


def wait_ok(url: str, timeout_s: float, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {timeout_s} s ({last})\n{explain()}")
