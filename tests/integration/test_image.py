"""The one image: every entrypoint runs from `switchboard:dev` against NATS from the FROM-scratch
`switchboard-nats:dev`, and together they serve a metered request end to end."""


import openai
import pytest

from libs.contracts.keys import mint_key
from tests.integration.api import generation
from tests.integration.cluster import UPSTREAM_KEY, Cluster
from tests.integration.containers import IMAGE, NATS_IMAGE, Containers, wait_ok
from tools.cli.processes import free_port, wait_port

HEALTH_PORTS = {"router": "SWITCHBOARD_ROUTER_HEALTH_PORT", "ledger": "SWITCHBOARD_LEDGER_HEALTH_PORT",
                "jobs": "SWITCHBOARD_JOBS_HEALTH_PORT", "webhooks": "SWITCHBOARD_WEBHOOKS_HEALTH_PORT"}




def test_every_entrypoint_runs_from_the_image_and_serves_a_metered_request(containers: Containers) -> None:
    nats_port, sim_port, edge_port = free_port(), free_port(), free_port()
    containers.run(NATS_IMAGE, f"-js -a 127.0.0.1 -p {nats_port} -sd /data")
    wait_port("127.0.0.1", nats_port, 20)
    containers.run(IMAGE, "simulator", {"SIM_PORT": str(sim_port), "SIM_HOST": "127.0.0.1",
                                        "SIM_API_KEY": UPSTREAM_KEY})
    wait_ok(f"http://127.0.0.1:{sim_port}/healthz", 30, containers.logs)
    admin = mint_key()
    env = {"SWITCHBOARD_NATS_URL": f"nats://127.0.0.1:{nats_port}", "SWITCHBOARD_ADMIN_KEY": admin,
           "SWITCHBOARD_HTTP_HOST": "127.0.0.1", "SWITCHBOARD_HEALTH_HOST": "127.0.0.1",
           "SIM_API_KEY": UPSTREAM_KEY, "SIM_BASE_URL": f"http://127.0.0.1:{sim_port}/v1"}
    ready = {}
    for service, port_env in HEALTH_PORTS.items():
        port = free_port()
        containers.run(IMAGE, service, {**env, port_env: str(port)})
        ready[service] = f"http://127.0.0.1:{port}/readyz"
    containers.run(IMAGE, "edge", {**env, "SWITCHBOARD_HTTP_PORT": str(edge_port)})
    ready["edge"] = f"http://127.0.0.1:{edge_port}/readyz"
    for url in ready.values():
        wait_ok(url, 60, containers.logs)

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{edge_port}/v1", api_key=admin, max_retries=0, timeout=15)
    raw = client.chat.completions.with_raw_response.create(
        model="sim/gpt-sim", messages=[{"role": "user", "content": "hello from a container"}])
    completion = raw.parse()
    assert completion.choices[0].message.content
    # The ledger (in its own container) stored the request: the usage path crossed NATS.
    gateway = Cluster.__new__(Cluster)  # only base_url and admin_key are used by the helper
    gateway.edge_ports, gateway.admin_key = [edge_port], admin
    stored = generation(gateway, raw.headers["x-request-id"], timeout_s=20)
    assert stored["model"] == "sim/gpt-sim" and stored["status"] == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"http://127.0.0.1:{edge_port}/v1", api_key="sk-wrong", max_retries=0).models.list()


def test_the_image_refuses_an_unknown_service(containers: Containers) -> None:
    container = containers.run(IMAGE, "frobnicate")
    result = container.get_wrapped_container().wait(timeout=30)
    stdout, stderr = container.get_logs()
    assert result["StatusCode"] != 0
    assert b"unknown service 'frobnicate'" in stdout + stderr
