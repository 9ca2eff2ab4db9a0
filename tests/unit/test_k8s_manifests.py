"""deploy/k8s: every overlay renders with `kubectl kustomize`, validates offline against the
Kubernetes schemas (strict: unknown fields fail), and holds what operating it relies on."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("dev", "prod", "prod-no-keda")
SERVICES = ("edge", "router", "ledger", "jobs", "webhooks")
CONSUMERS = ("ledger", "jobs", "webhooks")
KUBERNETES_VERSION = "1.30.0"
EDGE_DRAIN_S = 5 + 60  # the preStop pause, then aiohttp's AppRunner shutdown_timeout for open requests
CRDS = {("keda.sh/v1alpha1", "ScaledObject")}


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (make test installs it)"
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    yield request.param, _render(request.param)


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_every_resource_validates_against_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked > 20


def test_the_validator_rejects_a_broken_manifest() -> None:
    deployment = _kind(_render("dev"), "Deployment")["edge"]
    deployment["spec"]["replicass"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_each_service_is_a_hardened_deployment_with_probes_and_a_pdb(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    deployments, pdbs = _kind(docs, "Deployment"), _kind(docs, "PodDisruptionBudget")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [name]  # one image, the service chosen by the command
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/lib/switchboard", "/tmp"}
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployments["edge"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > EDGE_DRAIN_S


def test_nats_is_a_three_node_jetstream_cluster_in_the_helm_charts_shape(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    nats = _kind(docs, "StatefulSet")["nats"]
    headless = _kind(docs, "Service")["nats-headless"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["serviceName"] == "nats-headless"
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    (container,) = nats["spec"]["template"]["spec"]["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz?js-server-only=true"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    conf = next(iter(c for c in _kind(docs, "ConfigMap").values() if c["metadata"]["name"] == "nats-config"))
    text = conf["data"]["nats.conf"]
    assert "server_name: $POD_NAME" in text
    for pod in range(3):
        assert f"nats://nats-{pod}.nats-headless:6222" in text
    assert _kind(docs, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1
    env = next(c for c in _kind(docs, "ConfigMap").values() if c["metadata"]["name"] == "switchboard-env")["data"]
    assert env["SWITCHBOARD_NATS_REPLICAS"] == "3"


def test_autoscaling_per_overlay_and_never_two_autoscalers_on_one_deployment(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in _kind(docs, "HorizontalPodAutoscaler").values()}
    scaled = _kind(docs, "ScaledObject")
    assert not hpas & {d["spec"]["scaleTargetRef"]["name"] for d in scaled.values()}
    if overlay == "dev":
        assert not hpas and not scaled
        return
    assert {"edge", "router"} <= hpas
    if overlay == "prod":
        assert set(scaled) == set(CONSUMERS)
        streams = {"ledger": "USAGE", "jobs": "JOBS", "webhooks": "WEBHOOKS"}
        for name, obj in scaled.items():
            triggers = obj["spec"]["triggers"]
            assert all(t["type"] == "nats-jetstream" for t in triggers)
            assert streams[name] in {t["metadata"]["stream"] for t in triggers}
            for trigger in triggers:
                meta = trigger["metadata"]
                assert meta["natsServerMonitoringEndpoint"] == f"nats-headless.{obj['metadata']['namespace']}" \
                                                             ".svc.cluster.local:8222"
                assert meta["account"] == "$G" and int(meta["lagThreshold"]) > 0 and meta["consumer"]
    else:
        assert set(CONSUMERS) <= hpas and not scaled


def test_only_the_edge_is_reachable_and_only_router_and_webhooks_reach_out(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    policies = _kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    open_ingress = [p for p in policies.values() if any("from" not in rule for rule in p["spec"].get("ingress", []))]
    assert [p["metadata"]["name"] for p in open_ingress] == ["edge-ingress"]
    assert policies["edge-ingress"]["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "edge"}
    outbound = [p for p in policies.values()
                if any("to" not in rule and {"port": 443, "protocol": "TCP"} in rule.get("ports", [])
                       for rule in p["spec"].get("egress", []))]
    assert len(outbound) == 1
    selector = outbound[0]["spec"]["podSelector"]["matchExpressions"][0]
    assert selector["key"] == "app.kubernetes.io/component" and set(selector["values"]) == {"router", "webhooks"}
