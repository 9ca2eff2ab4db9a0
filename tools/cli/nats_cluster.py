"""A local NATS cluster: N nats-servers routed to each other on loopback, JetStream on each.

For trying failover on one machine (`switchboard up --nats-cluster 3`) and for the failover
tests. Every node has its own server name and store (`<data>/nats-<i>/`), all share one
cluster name, and each lists the others' route ports, so any two of three form a quorum.
A node's process restarted from the same config file comes back on the same ports and
store and catches up from the others. Services connect to all nodes
(SWITCHBOARD_NATS_URL = the comma-separated client URLs) and create every stream, KV
bucket and object store with SWITCHBOARD_NATS_REPLICAS copies (`cluster_env`).
"""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tools.cli.processes import (
    ManagedProcess,
    ensure_free,
    free_port,
    http_ok,
    nats_config,
    spawn_nats,
    wait_http_ok,
    wait_port,
)

CLUSTER_NAME = "switchboard"
MAX_REPLICAS = 3  # JetStream's usual choice: survives one lost node, and more copies only cost writes
ROUTE_PORT_OFFSET = 2000  # the NATS convention: clients on 4222, routes on 6222, monitoring on 8222
MONITOR_PORT_OFFSET = 4000


@dataclass(frozen=True)
class NatsNode:
    index: int  # 1-based, as in the server name and the store dir
    port: int
    route_port: int
    monitor_port: int
    data_dir: Path

    @property
    def name(self) -> str:
        return f"nats-{self.index}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def store(self) -> Path:
        return self.data_dir / self.name

    @property
    def conf(self) -> Path:
        return self.data_dir / f"{self.name}.conf"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


def plan_nodes(data_dir: Path, count: int, base_port: int | None = None) -> list[NatsNode]:
    """`count` nodes: clients on base_port, base_port+1, ... (routes and monitoring 2000 and 4000
    above), or on free ports when no base_port is given (tests)."""
    if count < 1:
        raise ValueError("a NATS cluster needs at least one node")

    def port(offset: int, i: int) -> int:
        return free_port() if base_port is None else base_port + offset + i

    return [NatsNode(i + 1, port(0, i), port(ROUTE_PORT_OFFSET, i), port(MONITOR_PORT_OFFSET, i), data_dir)
            for i in range(count)]


def urls(nodes: list[NatsNode]) -> str:
    """SWITCHBOARD_NATS_URL for a cluster: every node, so a client reaches whichever is up."""
    return ",".join(node.url for node in nodes)


def replicas(nodes: list[NatsNode]) -> int:
    return min(len(nodes), MAX_REPLICAS)


def cluster_env(nodes: list[NatsNode]) -> dict[str, str]:
    """What the services need to use the cluster: all its URLs and the replica count."""
    return {"SWITCHBOARD_NATS_URL": urls(nodes), "SWITCHBOARD_NATS_REPLICAS": str(replicas(nodes))}


def node_config(node: NatsNode, nodes: list[NatsNode]) -> str:
    routes = ", ".join(f"nats-route://127.0.0.1:{peer.route_port}" for peer in nodes if peer is not node)
    return (f"server_name: {node.name}\n"
            f"http: 127.0.0.1:{node.monitor_port}\n"
            + nats_config(node.port, node.store,
                          f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{node.route_port}\n"
                          f"  routes: [{routes}]\n}}\n"))


def node_process(node: NatsNode, nodes: list[NatsNode], log_dir: Path | None) -> ManagedProcess:
    """One node's nats-server, not waited for (a node alone has no quorum: start them all, then wait)."""
    for port, what in ((node.port, "clients"), (node.route_port, "routes"), (node.monitor_port, "monitoring")):
        ensure_free(port, f"{node.name} ({what})")
    node.store.mkdir(parents=True, exist_ok=True)
    node.conf.write_text(node_config(node, nodes))
    return spawn_nats(node.name, node.conf, log_dir)


def jetstream_ready(node: NatsNode) -> bool:
    """The node serves JetStream: it listens and knows the cluster's meta leader (its /healthz)."""
    return http_ok(f"{node.monitor_url}/healthz")


def wait_ready(node: NatsNode, proc: ManagedProcess, timeout_s: float = 30.0) -> None:
    wait_port("127.0.0.1", node.port, timeout_s, proc.popen)
    wait_http_ok(f"{node.monitor_url}/healthz", timeout_s, proc.popen)


def meta_leader(nodes: list[NatsNode]) -> str | None:
    """The server name of the JetStream meta leader, as any live node's /jsz reports it."""
    for node in nodes:
        try:
            with urllib.request.urlopen(f"{node.monitor_url}/jsz", timeout=1) as resp:
                leader = json.load(resp).get("meta_cluster", {}).get("leader")
        except (urllib.error.URLError, OSError, ValueError):
            continue
        if leader:
            return str(leader)
    return None
