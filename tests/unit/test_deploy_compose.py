"""deploy/compose.yaml: every Switchboard service runs a command the image's entrypoint knows,
reaches NATS by its service name, and only the edge is published (on loopback)."""

from pathlib import Path

import pytest
import yaml

from tools.imaging.entrypoint import MODULES, argv_for

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def test_each_gateway_service_is_an_entrypoint_of_the_one_image() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    gateway = {name: s for name, s in services.items() if "switchboard:dev" in s["image"]}
    assert set(gateway) == {"edge", "router", "ledger", "jobs", "webhooks"}
    for name, service in gateway.items():
        assert service["command"] == [name]
        assert argv_for(service["command"])[-1] == MODULES[name]
        assert service["environment"]["SWITCHBOARD_NATS_URL"] == "nats://nats:4222"
        assert service["read_only"] is True and service["user"] == "10001:10001"
        assert service.get("ports", []) == (["127.0.0.1:8080:8080"] if name == "edge" else [])
    assert "switchboard-nats:dev" in services["nats"]["image"]
    assert services["clickhouse"]["profiles"] == ["clickhouse"]


def test_the_entrypoint_refuses_what_it_does_not_know() -> None:
    with pytest.raises(SystemExit, match="unknown service 'frobnicate'"):
        argv_for(["frobnicate"])
    with pytest.raises(SystemExit):
        argv_for([])
    assert argv_for(["up", "--nats-cluster", "3"])[-3:] == ["up", "--nats-cluster", "3"]
