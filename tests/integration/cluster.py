"""A whole gateway for tests: real nats-server, simulator, routers and edges as
processes, started and supervised through the same code as `switchboard up`.

Supervised as there: a process that crashes (`proc.crash()`, `cluster.nats.crash()`)
is restarted with backoff. `proc.kill()` / `proc.stop()` / `cluster.nats.stop()` mean
"and stay down", for the tests that take a part away on purpose.

NATS runs as a local process by default; with SWITCHBOARD_TEST_CONTAINERS=1
(a Docker engine and `make image`) it runs in a container through testcontainers instead.
tests/integration/test_container_cluster.py runs the whole gateway from the images.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from libs.contracts.keys import mint_key
from libs.contracts.supervision import SUPERVISOR_STATUS_ENV
from tools.cli.nats_cluster import NatsNode, cluster_env, meta_leader, node_process, plan_nodes, urls
from tools.cli.nats_cluster import wait_ready as wait_cluster_node
from tools.cli.processes import (
    ManagedProcess,
    free_port,
    start_module,
    start_nats,
    wait_http_ok,
    wait_port,
)
from tools.cli.supervisor import Supervisor
from tools.cli.up import edge_module

UPSTREAM_KEY = "sk-upstream-sim-key"  # the provider key the router must present
ROUTER_READ_TIMEOUT_S = 2.0
EDGE_TIMEOUT_S = 4.0
MAX_BODY_BYTES = 1024 * 1024
PROVIDER_KEY_VARS = ("OPENAI_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY", "MISTRAL_API_KEY",
                     "DEEPSEEK_API_KEY", "XAI_API_KEY", "FIREWORKS_API_KEY", "SIM_API_KEY", "ANTHROPIC_API_KEY",
                     "GEMINI_API_KEY", "REPLICATE_API_TOKEN", "FAL_KEY")


class NatsHandle:
    """NATS for tests: one server, or `nodes` clustered ones (tools/cli/nats_cluster.py), that tests
    can stop, crash and start again on the same ports and store.

    Cluster nodes are numbered from 1, as their server names (`nats-1`, ...) are; `stop()`,
    `crash()` and `start()` without a node act on every node.
    """

    def __init__(self, data_dir: Path, log_dir: Path, supervisor: Supervisor, nodes: int = 1) -> None:
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._supervisor = supervisor
        self._container = None
        self._proc: ManagedProcess | None = None
        self.nodes: list[NatsNode] = plan_nodes(data_dir, nodes) if nodes > 1 else []
        self._procs: dict[int, ManagedProcess] = {}
        self.port = self.nodes[0].port if self.nodes else free_port()
        if os.environ.get("SWITCHBOARD_TEST_CONTAINERS") == "1":
            if self.nodes:
                raise RuntimeError("a NATS cluster runs as local processes only")
            from tests.integration.containers import NATS_IMAGE, DockerContainer

            # The FROM-scratch image `make image` builds (no registry to pull from), on the host network.
            self._container = DockerContainer(NATS_IMAGE, command=f"-js -a 127.0.0.1 -p {self.port} -sd /data",
                                              network_mode="host")
        self.start()

    @property
    def url(self) -> str:
        """SWITCHBOARD_NATS_URL: the server, or every node comma-separated."""
        return urls(self.nodes) if self.nodes else f"nats://127.0.0.1:{self.port}"

    @property
    def servers(self) -> list[str]:
        """The URLs for `nats.connect(servers=...)`."""
        return [node.url for node in self.nodes] if self.nodes else [self.url]

    def env(self) -> dict[str, str]:
        """What the services get to use it: the URL(s) and, for a cluster, the replica count."""
        return cluster_env(self.nodes) if self.nodes else {"SWITCHBOARD_NATS_URL": self.url}

    def proc(self, node: int) -> ManagedProcess:
        return self._procs[node]

    def node_named(self, server_name: str) -> int:
        """The node number of a server name as JetStream reports it (a stream's or the meta leader)."""
        return next(node.index for node in self.nodes if node.name == server_name)

    def meta_leader(self) -> int | None:
        leader = meta_leader(self.nodes)
        return None if leader is None else self.node_named(leader)

    def start(self, node: int | None = None) -> None:
        if self._container is not None:
            self._container.start()
            wait_port("127.0.0.1", self.port, 30)
        elif not self.nodes:
            self._proc = self._supervisor.add(start_nats(self._data_dir, self.port, self._log_dir))
        else:
            # All before waiting for any: a node alone has no quorum, so it is not ready alone.
            chosen = [n for n in self.nodes if node in (None, n.index) and not self._alive(n.index)]
            for n in chosen:
                self._procs[n.index] = self._supervisor.add(node_process(n, self.nodes, self._log_dir))
            for n in chosen:
                wait_cluster_node(n, self._procs[n.index])

    def stop(self, node: int | None = None) -> None:
        """Stop it (one node, or all) and keep it down until `start()`."""
        if self._container is not None:
            self._container.stop()
        elif not self.nodes:
            if self._proc is not None:
                self._proc.stop()
        else:
            for index, proc in self._procs.items():
                if node in (None, index):
                    proc.stop()

    def crash(self, node: int | None = None) -> None:
        """SIGKILL it (one node, or all) as a crash would: the supervisor restarts it on the same
        ports and store."""
        if self.nodes:
            for index, proc in self._procs.items():
                if node in (None, index):
                    proc.crash()
            return
        assert self._proc is not None, "a NATS container is not supervised"
        self._proc.crash()

    def _alive(self, node: int) -> bool:
        proc = self._procs.get(node)
        return proc is not None and proc.alive()


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    nats: NatsHandle
    sim_url: str
    admin_key: str
    supervisor: Supervisor
    edge_ports: list[int] = field(default_factory=list)
    edges: list[ManagedProcess] = field(default_factory=list)
    routers: list[ManagedProcess] = field(default_factory=list)
    ledgers: list[ManagedProcess] = field(default_factory=list)
    jobs: list[ManagedProcess] = field(default_factory=list)
    webhooks: list[ManagedProcess] = field(default_factory=list)
    others: list[ManagedProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_ports[0]}/v1"

    def edge_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.edge_ports[index]}/v1"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def client(self, key: str | None = None, base_url: str | None = None, **kwargs: object) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=base_url or self.base_url, api_key=key or self.admin_key, **kwargs)

    def async_client(self, key: str | None = None, **kwargs: object) -> openai.AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key or self.admin_key, **kwargs)

    def start_router(self, log_level: str = "info") -> ManagedProcess:
        port = free_port()
        env = {**self.env, "SWITCHBOARD_ROUTER_HEALTH_PORT": str(port), "SWITCHBOARD_LOG_LEVEL": log_level}
        proc = self._start(f"router-{len(self.routers)}", "services.router", env, port)
        self.routers.append(proc)
        return proc

    def start_ledger(self) -> ManagedProcess:
        port = free_port()
        env = {**self.env, "SWITCHBOARD_LEDGER_HEALTH_PORT": str(port)}
        proc = self._start(f"ledger-{len(self.ledgers)}", "services.ledger", env, port)
        self.ledgers.append(proc)
        return proc

    def start_jobs(self) -> ManagedProcess:
        port = free_port()
        env = {**self.env, "SWITCHBOARD_JOBS_HEALTH_PORT": str(port)}
        proc = self._start(f"jobs-{len(self.jobs)}", "services.jobs", env, port)
        self.jobs.append(proc)
        return proc

    def start_webhooks(self) -> ManagedProcess:
        port = free_port()
        env = {**self.env, "SWITCHBOARD_WEBHOOKS_HEALTH_PORT": str(port)}
        proc = self._start(f"webhooks-{len(self.webhooks)}", "services.webhooks", env, port)
        self.webhooks.append(proc)
        return proc

    def start_edge(self) -> ManagedProcess:
        port = free_port()
        env = {**self.env, "SWITCHBOARD_HTTP_PORT": str(port)}
        module = edge_module(env)
        if module != "services.edge":  # it hosts a router: that router's health and /metrics port
            env["SWITCHBOARD_ROUTER_HEALTH_PORT"] = str(free_port())
        proc = self._start(f"edge-{len(self.edges)}", module, env, port)
        self.edges.append(proc)
        self.edge_ports.append(port)
        return proc

    def _start(self, name: str, module: str, env: dict[str, str], health_port: int) -> ManagedProcess:
        """Start a service under the supervisor; one that fails to get ready fails the test at once."""
        proc = self.supervisor.add(start_module(name, module, env, self.log_dir))
        try:
            wait_http_ok(f"http://127.0.0.1:{health_port}/readyz", 30, proc.popen)
        except Exception:
            proc.stop()
            raise
        return proc

    def sim_journal(self) -> list[dict[str, object]]:
        return httpx.get(f"{self.sim_url}/_sim/requests").json()

    def clear_sim_journal(self) -> None:
        httpx.delete(f"{self.sim_url}/_sim/requests")

    def wait_ready(self, timeout_s: float = 20) -> None:
        for port in self.edge_ports:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout_s)

    def stop(self) -> None:
        self.supervisor.stop_background()
        for proc in [*self.edges, *self.jobs, *self.webhooks, *self.routers, *self.ledgers, *self.others]:
            proc.stop(timeout_s=5)
        self.nats.stop()


def start_cluster(routers: int = 1, edges: int = 1, extra_env: dict[str, str] | None = None,
                  nats_nodes: int = 1) -> Cluster:
    """The whole gateway; `nats_nodes=3` runs NATS as a 3-node cluster with every stream, KV
    bucket and object store kept in 3 copies (`cluster.nats.crash(node)` / `stop(node)`)."""
    root = Path(tempfile.mkdtemp(prefix="switchboard-test-"))
    log_dir = root / "logs"
    supervisor = Supervisor(root / "supervisor.json", log_dir / "supervisor.log")
    supervisor.start_background()
    nats = NatsHandle(root, log_dir, supervisor, nats_nodes)
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    base_env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEY_VARS}
    sim = supervisor.add(start_module("upstream_sim", "tools.upstream_sim",
                                      {**base_env, "SIM_PORT": str(sim_port), "SIM_API_KEY": UPSTREAM_KEY}, log_dir))
    wait_http_ok(f"{sim_url}/healthz", 20, sim.popen)
    config = root / "switchboard.toml"
    # A provider declared in the config file, as users add vLLM/Ollama/...
    config.write_text(
        "[[providers]]\n"
        'slug = "local"\n'
        f'base_url = "{sim_url}/v1"\n'
        'api_key_env = "LOCAL_LLM_KEY"\n'
        # An expensive model so spend caps are reached in a handful of requests.
        "[[models]]\n"
        'id = "sim/pricey"\n'
        'upstream = "gpt-sim"\n'
        "input_per_mtok = 1000.0\n"
        "output_per_mtok = 2000.0\n"
        # Two deployments, one of them broken: failover and its breaker.
        "[[models]]\n"
        'id = "sim/ha"\n'
        'upstream = "gpt-sim"\n'
        "input_per_mtok = 1.0\n"
        "output_per_mtok = 2.0\n"
        'deployments = [{provider = "sim", upstream = "gpt-sim+status=503"}, {provider = "local"}]\n'
        # A model that always fails, with a configured fallback.
        "[[models]]\n"
        'id = "sim/flaky"\n'
        'upstream = "gpt-sim+status=500"\n'
        'fallbacks = ["sim/gpt-sim"]\n'
    )
    admin_key = mint_key()
    env = {
        **base_env,
        **nats.env(),
        "SWITCHBOARD_ADMIN_KEY": admin_key,
        "SWITCHBOARD_CONFIG": str(config),
        "SWITCHBOARD_DATA_DIR": str(root),
        SUPERVISOR_STATUS_ENV: str(supervisor.status_path),
        "SWITCHBOARD_ROUTER_READ_TIMEOUT_S": str(ROUTER_READ_TIMEOUT_S),
        "SWITCHBOARD_REQUEST_TIMEOUT_S": str(EDGE_TIMEOUT_S),
        "SWITCHBOARD_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "SWITCHBOARD_FETCH_PRIVATE_URLS": "1",  # audio_url fetches come from the simulator on 127.0.0.1
        "SWITCHBOARD_JOB_POLL_S": "0.2",  # generations are polled every 0.2 s, growing to 2 s
        # Webhook receivers in tests listen on 127.0.0.1; six attempts in about a second and a half.
        "SWITCHBOARD_WEBHOOK_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.3,0.3,0.3,0.3",
        "SWITCHBOARD_WEBHOOK_TIMEOUT_S": "3",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": f"{sim_url}/v1",
        "SIM_API_KEY": UPSTREAM_KEY,
        "SIM_BASE_URL": f"{sim_url}/v1",
        "LOCAL_LLM_KEY": UPSTREAM_KEY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": sim_url,
        "GEMINI_API_KEY": UPSTREAM_KEY,
        "GEMINI_BASE_URL": sim_url,
        "REPLICATE_API_TOKEN": UPSTREAM_KEY,
        "REPLICATE_BASE_URL": sim_url,
        "FAL_KEY": UPSTREAM_KEY,
        "FAL_BASE_URL": f"{sim_url}/fal",
        **(extra_env or {}),
    }
    cluster = Cluster(root, env, nats, sim_url, admin_key, supervisor, others=[sim])
    try:
        cluster.start_ledger()
        for _ in range(routers):
            cluster.start_router()
        cluster.start_jobs()
        cluster.start_webhooks()
        for _ in range(edges):
            cluster.start_edge()
    except Exception:
        cluster.stop()
        raise
    return cluster


def cleanup(cluster: Cluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def eventually(check, timeout_s: float = 10.0, interval_s: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll `check()` until it returns a truthy value or raises nothing; return that value."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last error: {last!r})")
