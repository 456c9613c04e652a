"""Renderers of the deploy workflow's Kubernetes objects (workflows/render/release.py, namespace.py, volume.py).

- Every rendered object validates (strict: no unknown fields) against the newest Kubernetes schemas
  kubernetes-validate ships, for a spread of release specs and both NetworkPolicy `endPort` variants; the
  variant without `endPort` also against the oldest schemas it ships.
- Pods can never run as root, escalate or hold capabilities, get no service-account token, and name a
  RuntimeClass exactly when the spec does; probes follow the health check, liveness more patient.
- The Service selects what the Deployment selects, and the pods carry those labels.
- The env Secret round-trips through base64 and is immutable; the PDB exists only for several replicas and
  uses the cluster's API version.
- Egress: the metadata address and private ranges are cut out of every allowed ipBlock, SMTP is never
  allowed, 443 is, DNS only to the cluster DNS (what traffic these allow, rule by rule, is
  tests/unit/test_egress_semantics.py); ingress admits only the edge's namespace and the project's own pods.
- The Ingress routes the hostname and covers it with TLS.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version

from workflows.domain.labels import LABEL_APP, LABEL_COMMIT, LABEL_PROJECT, LABEL_RELEASE, LABEL_TENANT
from workflows.domain.specs import AppConfig, ClusterCaps, Guardrails, HealthCheck, ReleaseSpec, Resources
from workflows.render.namespace import cluster_dns_peer, namespace_objects
from workflows.render.release import (
    app_ingress,
    app_service,
    labels_for,
    release_deployment,
    release_pdb,
    release_secret,
    selector_for,
)

LATEST = latest_version()
# kubernetes-validate ships no schemas older than its oldest (1.25 for 1.37; the testbed runs 1.20, and asking
# for 1.20 fails inside the package), so the pre-endPort variant is checked against the oldest it has.
OLDEST = all_versions()[0]

CAPS_NEW = ClusterCaps(minor=30)
CAPS_OLD = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
NAMESPACE = "dm-acme-shop-abc123"
IMAGE = "registry.local:5000/acme/shop/web@sha256:" + "a" * 64
METADATA_IP = ipaddress.ip_address("169.254.169.254")
SMTP = (25, 465, 587)


def _spec(**changes: Any) -> ReleaseSpec:
    config = AppConfig(port=8080, **changes.pop("config", {}))
    fields: dict[str, Any] = {
        "tenant": "acme",
        "project": "shop",
        "app": "web",
        "namespace": NAMESPACE,
        "seq": 3,
        "deployment_id": "dep-0a1b2c",
        "image": IMAGE,
        "config": config,
    }
    fields.update(changes)
    return ReleaseSpec(**fields)


SPECS: dict[str, ReleaseSpec] = {
    "minimal": _spec(),
    "http-check": _spec(config={"health_check": HealthCheck(path="/healthz", initial_delay_seconds=5)}),
    "tcp-check": _spec(config={"health_check": HealthCheck(type="tcp", failure_threshold=1)}),
    "three-replicas": _spec(config={"replicas": 3}),
    "everything": _spec(
        commit_sha="0123456789abcdef0123456789abcdef01234567",
        runtime_class="gvisor",
        image_pull_secret="registry-pull",
        config={
            "replicas": 3,
            "command": ["/bin/server"],
            "args": ["--port", "8080"],
            "resources": Resources(cpu_millicores=500, cpu_limit_millicores=2000, memory_mib=1024),
            "shutdown_grace_seconds": 90,
            "env": {"A": "b"},
        },
    ),
}


def _validate(obj: dict[str, Any], version: str = LATEST) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def _release_objects(spec: ReleaseSpec, caps: ClusterCaps) -> list[dict[str, Any]]:
    objs = [
        release_secret(spec, {"DATABASE_URL": "postgres://u:p@db/x", "EMPTY": ""}),
        release_deployment(spec),
        release_deployment(spec, replicas=0),
        app_service(spec.namespace, spec.tenant, spec.project, spec.app, spec.release),
        app_ingress(spec.namespace, spec.tenant, spec.project, spec.app, "web-shop-acme.apps.example", None, None),
        app_ingress(spec.namespace, spec.tenant, spec.project, spec.app, "shop.example.com", "traefik", "shop-tls"),
    ]
    pdb = release_pdb(spec, caps)
    if pdb is not None:
        objs.append(pdb)
    return objs


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = _pod(deployment)["containers"]
    assert len(containers) == 1
    return containers[0]


def _by_name(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _egress(caps: ClusterCaps) -> dict[str, Any]:
    return _by_name(
        namespace_objects("acme", "shop", NAMESPACE, Guardrails(), caps), "NetworkPolicy", "egress-public-only"
    )


def _allowed_ports(ports: list[dict[str, Any]] | None, protocol: str) -> set[int]:
    if not ports:  # no ports: every port of every protocol
        return set(range(1, 65536))
    allowed: set[int] = set()
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p:
            return set(range(1, 65536))
        allowed.update(range(p["port"], p.get("endPort", p["port"]) + 1))
    return allowed


# --- Schema validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_release_objects_validate_against_latest_schemas(name: str) -> None:
    for obj in _release_objects(SPECS[name], CAPS_NEW):
        _validate(obj)


@pytest.mark.parametrize("caps", [CAPS_NEW, CAPS_OLD], ids=["end-port", "no-end-port"])
def test_namespace_objects_validate_against_latest_schemas(caps: ClusterCaps) -> None:
    objs = namespace_objects("acme", "shop", NAMESPACE, Guardrails(), caps)
    assert [o["kind"] for o in objs] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "NetworkPolicy"]
    for obj in objs:
        _validate(obj)


def test_old_cluster_variant_validates_against_oldest_shipped_schemas() -> None:
    for obj in namespace_objects("acme", "shop", NAMESPACE, Guardrails(), CAPS_OLD):
        _validate(obj, OLDEST)
    for obj in _release_objects(SPECS["everything"], CAPS_NEW):
        _validate(obj, OLDEST)


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = release_deployment(SPECS["minimal"])
    _pod(deployment)["automountServiceAcountToken"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


# --- Pods ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_pod_never_runs_as_root_or_escalates(name: str) -> None:
    deployment = release_deployment(SPECS[name])
    pod, container = _pod(deployment), _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0 and pod["securityContext"]["runAsGroup"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in sc and "add" not in sc["capabilities"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert not any(k.startswith("host") for k in pod)  # hostNetwork, hostPID, hostIPC
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp == {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_runtime_class_present_iff_set() -> None:
    assert "runtimeClassName" not in _pod(release_deployment(SPECS["minimal"]))
    assert _pod(release_deployment(SPECS["everything"]))["runtimeClassName"] == "gvisor"


def test_optional_pod_fields_follow_the_spec() -> None:
    minimal, full = release_deployment(SPECS["minimal"]), release_deployment(SPECS["everything"])
    assert "imagePullSecrets" not in _pod(minimal)
    assert _pod(full)["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert "command" not in _container(minimal) and "args" not in _container(minimal)
    assert _container(full)["command"] == ["/bin/server"]
    assert _container(full)["args"] == ["--port", "8080"]
    assert LABEL_COMMIT not in minimal["metadata"]["labels"]
    assert full["spec"]["template"]["metadata"]["labels"][LABEL_COMMIT] == SPECS["everything"].commit_sha
    assert _pod(minimal)["terminationGracePeriodSeconds"] == 30
    assert _pod(full)["terminationGracePeriodSeconds"] == 90
    assert _container(full)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1024Mi"},
        "limits": {"cpu": "2000m", "memory": "1024Mi"},
    }
    assert _container(full)["image"] == IMAGE
    assert _container(full)["envFrom"] == [{"secretRef": {"name": "web-r3-env"}}]


def test_replicas_default_to_config_and_can_be_overridden() -> None:
    spec = SPECS["three-replicas"]
    assert release_deployment(spec)["spec"]["replicas"] == 3
    assert release_deployment(spec, replicas=0)["spec"]["replicas"] == 0
    assert release_deployment(spec)["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_probes_follow_the_health_check() -> None:
    http = _container(release_deployment(SPECS["http-check"]))
    assert http["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert http["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert http["readinessProbe"]["initialDelaySeconds"] == 5
    assert http["livenessProbe"]["initialDelaySeconds"] == 15
    assert http["livenessProbe"]["failureThreshold"] == 6

    tcp = _container(release_deployment(SPECS["tcp-check"]))
    assert tcp["readinessProbe"]["tcpSocket"] == {"port": "http"} and "httpGet" not in tcp["readinessProbe"]
    assert tcp["readinessProbe"]["failureThreshold"] == 1
    assert tcp["livenessProbe"]["failureThreshold"] == 3

    default = HealthCheck()
    none = _container(release_deployment(SPECS["minimal"]))
    assert none["readinessProbe"] == {
        "tcpSocket": {"port": "http"},
        "initialDelaySeconds": default.initial_delay_seconds,
        "periodSeconds": default.period_seconds,
        "timeoutSeconds": default.timeout_seconds,
        "failureThreshold": default.failure_threshold,
    }
    for c in (http, tcp, none):
        ready, live = c["readinessProbe"], c["livenessProbe"]
        assert live["initialDelaySeconds"] > ready["initialDelaySeconds"]
        assert live["failureThreshold"] >= ready["failureThreshold"]
        assert live["periodSeconds"] >= max(ready["periodSeconds"], 5)  # a short stall never restarts it
    # A new release is served at the first probe that answers, not one period later (decision 0024); the
    # default never restarts a container sooner than it did at a 5 s period.
    assert none["readinessProbe"]["periodSeconds"] == 1
    assert none["livenessProbe"]["periodSeconds"] * none["livenessProbe"]["failureThreshold"] >= 30


def test_pods_land_on_the_run_pool_and_leave_dead_nodes_fast() -> None:
    pod = _pod(release_deployment(SPECS["three-replicas"]))
    assert pod["nodeSelector"] == {"pool": "run"}
    tolerations = {t["key"]: t for t in pod["tolerations"]}
    assert tolerations["pool"] == {"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        assert tolerations[key]["tolerationSeconds"] == 15 and tolerations[key]["effect"] == "NoExecute"
    slower = SPECS["three-replicas"].model_copy(update={"node_failure_seconds": 60})
    assert {t.get("tolerationSeconds") for t in _pod(release_deployment(slower))["tolerations"]} == {None, 60}
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == selector_for("web", "web-r3")


# --- Selection between Service and Deployment ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
def test_service_selects_what_the_deployment_runs(name: str) -> None:
    spec = SPECS[name]
    deployment = release_deployment(spec)
    service = app_service(spec.namespace, spec.tenant, spec.project, spec.app, spec.release)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector == {LABEL_APP: "web", LABEL_RELEASE: "web-r3"}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert pod_labels == labels_for(spec)
    assert service["metadata"]["name"] == "web" and service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert _container(deployment)["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_release_labels_name_tenant_project_and_release() -> None:
    labels = labels_for(SPECS["minimal"])
    assert labels[LABEL_TENANT] == "acme" and labels[LABEL_PROJECT] == "shop"
    assert labels["app.kubernetes.io/managed-by"] == "deploy-mcp"
    assert labels["deploy-mcp/deployment-id"] == "dep-0a1b2c"


# --- Secret and PDB --------------------------------------------------------------------------------------------


def test_secret_round_trips_and_is_immutable() -> None:
    values = {"DATABASE_URL": "postgres://u:p@db/x", "EMPTY": "", "UNICODE": "héllo ✓"}
    secret = release_secret(SPECS["minimal"], values)
    assert secret["metadata"]["name"] == "web-r3-env"
    assert secret["immutable"] is True and secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == values


def test_pdb_only_for_several_replicas_with_the_cluster_api() -> None:
    assert release_pdb(SPECS["minimal"], CAPS_NEW) is None
    new = release_pdb(SPECS["three-replicas"], CAPS_NEW)
    old = release_pdb(SPECS["three-replicas"], CAPS_OLD)
    assert new is not None and old is not None
    assert new["apiVersion"] == "policy/v1" and old["apiVersion"] == "policy/v1beta1"
    assert new["spec"]["maxUnavailable"] == 1
    assert (
        new["spec"]["selector"]["matchLabels"]
        == release_deployment(SPECS["three-replicas"])["spec"]["selector"]["matchLabels"]
    )


# --- Namespace guardrails --------------------------------------------------------------------------------------


def test_namespace_enforces_restricted_pod_security() -> None:
    ns = namespace_objects("acme", "shop", NAMESPACE, Guardrails(), CAPS_NEW)[0]
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == NAMESPACE and "namespace" not in ns["metadata"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    assert labels[LABEL_TENANT] == "acme" and labels[LABEL_PROJECT] == "shop"


def test_quota_and_limits_come_from_the_guardrails() -> None:
    objs = namespace_objects("acme", "shop", NAMESPACE, Guardrails(), CAPS_NEW)
    hard = _by_name(objs, "ResourceQuota", "guardrails")["spec"]["hard"]
    assert hard["requests.cpu"] == "8000m"
    assert hard["requests.memory"] == hard["limits.memory"] == "16384Mi"
    assert hard["requests.storage"] == "200Gi"
    assert hard["services.loadbalancers"] == hard["services.nodeports"] == "0"
    (limit,) = _by_name(objs, "LimitRange", "guardrails")["spec"]["limits"]
    assert limit["type"] == "Container"
    assert limit["defaultRequest"] == {"cpu": "100m", "memory": "128Mi"}
    assert limit["default"] == {"cpu": "400m", "memory": "128Mi"}
    assert limit["max"] == {"cpu": "16000m", "memory": "65536Mi"}
    for obj in objs[1:]:
        assert obj["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("caps", [CAPS_NEW, CAPS_OLD], ids=["end-port", "no-end-port"])
def test_egress_never_reaches_metadata_or_private_ranges(caps: ClusterCaps) -> None:
    private = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
    blocks = 0
    for rule in _egress(caps)["spec"]["egress"]:
        assert "to" in rule, rule  # no rule is open to every destination, DNS included
        if _allowed_ports(rule.get("ports"), "TCP") == _allowed_ports(rule.get("ports"), "UDP") == {53}:
            assert rule["to"] == [cluster_dns_peer(Guardrails(), caps)]  # DNS: the cluster's resolver only
            continue
        for peer in rule["to"]:
            if "ipBlock" not in peer:
                assert peer == {"podSelector": {}}  # the project's own pods, no other namespace
                continue
            blocks += 1
            cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            excepted = [ipaddress.ip_network(e) for e in peer["ipBlock"]["except"]]
            if METADATA_IP in cidr:
                assert any(METADATA_IP in e for e in excepted)
            for net in private:
                if net.version == cidr.version:
                    assert any(net[0] in e and net[-1] in e for e in excepted), net
    assert blocks == (2 if caps.ipv6_egress else 1)  # IPv6 only where the cluster is dual-stack


def test_ipv6_egress_rule_only_when_the_cluster_says_so() -> None:
    dual = CAPS_NEW.model_copy(update={"ipv6_egress": True})
    cidrs = [p["ipBlock"]["cidr"] for r in _egress(dual)["spec"]["egress"] for p in r.get("to", []) if "ipBlock" in p]
    assert cidrs == ["0.0.0.0/0", "::/0"]
    test_egress_never_reaches_metadata_or_private_ranges(dual)
    v6 = [p for r in _egress(CAPS_NEW)["spec"]["egress"] for p in r.get("to", []) if "::/0" in str(p)]
    assert v6 == []


@pytest.mark.parametrize("caps", [CAPS_NEW, CAPS_OLD], ids=["end-port", "no-end-port"])
def test_egress_never_allows_smtp_but_allows_https(caps: ClusterCaps) -> None:
    public_tcp: set[int] = set()
    for rule in _egress(caps)["spec"]["egress"]:
        if rule.get("to") == [{"podSelector": {}}]:
            continue  # inside the project
        tcp = _allowed_ports(rule.get("ports"), "TCP")
        assert not tcp & set(SMTP), rule
        if "to" in rule:
            public_tcp |= tcp
    assert 443 in public_tcp and 80 in public_tcp
    if caps.network_policy_end_port:
        assert public_tcp == set(range(1, 65536)) - set(SMTP)
    else:
        assert all("endPort" not in p for rule in _egress(caps)["spec"]["egress"] for p in rule.get("ports", []))


def test_ingress_admits_only_the_edge_and_the_project() -> None:
    guard = Guardrails(edge_namespace_label=("deploy-mcp/role", "edge"))
    policy = _by_name(
        namespace_objects("acme", "shop", NAMESPACE, guard, CAPS_NEW), "NetworkPolicy", "ingress-from-edge-and-project"
    )
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchExpressions": [{"key": "deploy-mcp/database", "operator": "DoesNotExist"}]}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"deploy-mcp/role": "edge"}}},
        {"podSelector": {}},
    ]


# --- Ingress ---------------------------------------------------------------------------------------------------


def test_ingress_routes_and_covers_the_hostname() -> None:
    host = "web-shop-acme.apps.example"
    wildcard = app_ingress(NAMESPACE, "acme", "shop", "web", host, None, None)
    assert "ingressClassName" not in wildcard["spec"]
    assert wildcard["spec"]["tls"] == [{"hosts": [host]}]
    (rule,) = wildcard["spec"]["rules"]
    assert rule["host"] == host
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"] == {"service": {"name": "web", "port": {"name": "http"}}}

    custom = app_ingress(NAMESPACE, "acme", "shop", "web", "shop.example.com", "traefik", "shop-tls")
    assert custom["spec"]["ingressClassName"] == "traefik"
    assert custom["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    assert custom["spec"]["rules"][0]["host"] == "shop.example.com"
