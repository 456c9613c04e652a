"""What the project guardrails' NetworkPolicies allow, by meaning rather than by count: the testbed's CNI
enforces no NetworkPolicy, so the rendered policies (workflows/render/namespace.py) are evaluated by the
spec's rules (tests/support/netpol.py) from an app's pod to each destination, on every cluster variant the
renderer knows (1.30 with `endPort`, 1.20 without, dual-stack).

- Denied: the cloud metadata address 169.254.169.254 (also written as IPv4-mapped and NAT64 IPv6), the
  private ranges a cluster puts its nodes, pods and Services on (k3s and kubeadm defaults, RFC 1918, CGNAT,
  loopback, IPv6 ULA and link-local), SMTP (25, 465, 587) anywhere, and DNS to any address but the cluster DNS
  (public resolvers, another pod of kube-system, a ClusterIP as a bare address).
- Allowed: public HTTPS (and HTTP, QUIC), DNS over UDP and TCP to the cluster DNS pods, the project's own pods.
- From 1.21 the DNS peer is exactly kube-system's kube-dns pods; on 1.20 any namespace's kube-dns pods
  (decision 0009).
- The evaluator itself follows the spec on its own examples (union, AND vs OR of selectors, except, endPort).
- The rendered objects validate against the Kubernetes schemas (kubernetes-validate, strict).
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version

from tests.support.netpol import Destination, Namespace, Pod, egress_allowed, selector_matches
from workflows.domain.labels import LABEL_APP
from workflows.domain.specs import ClusterCaps, Guardrails
from workflows.render.namespace import namespace_objects, project_labels

NEW = ClusterCaps(minor=30)
OLD = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
DUAL = ClusterCaps(minor=30, ipv6_egress=True)
VARIANTS = pytest.mark.parametrize("caps", [NEW, OLD, DUAL], ids=["1.30", "1.20", "dual-stack"])

PROJECT_NS = Namespace("dm-acme-shop-abc123", {"kubernetes.io/metadata.name": "dm-acme-shop-abc123"})
APP = Pod(PROJECT_NS, {**project_labels("acme", "shop"), LABEL_APP: "web"}, "10.42.1.7")
NEIGHBOUR = Pod(PROJECT_NS, {**project_labels("acme", "shop"), LABEL_APP: "db"}, "10.42.2.9")
OTHER_TENANT = Pod(Namespace("dm-evil-x-def456", {"kubernetes.io/metadata.name": "dm-evil-x-def456"}),
                   {**project_labels("evil", "x"), LABEL_APP: "web"}, "10.42.3.3")


def kube_system(caps: ClusterCaps) -> Namespace:
    # before 1.21 nothing labels a namespace with its name; the install manifests add the edge label only
    labels = {"deploy-mcp/role": "edge"}
    if caps.minor >= 21:
        labels["kubernetes.io/metadata.name"] = "kube-system"
    return Namespace("kube-system", labels)


def dns_pod(caps: ClusterCaps, ip: str = "10.42.0.10") -> Pod:
    return Pod(kube_system(caps), {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"}, ip)


def objects(caps: ClusterCaps) -> list[dict[str, Any]]:
    return namespace_objects("acme", "shop", PROJECT_NS.name, Guardrails(), caps)


def allowed(caps: ClusterCaps, dest: Destination) -> bool:
    return egress_allowed(objects(caps), APP, dest)


METADATA = ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"]
PRIVATE = [
    "10.42.0.1",  # k3s pod network
    "10.43.0.1",  # k3s Service network (the API server's ClusterIP)
    "10.96.0.1",  # kubeadm Service network
    "10.244.1.1",  # kubeadm + flannel pod network
    "172.16.0.5", "172.31.255.254", "192.168.1.1",  # RFC 1918: nodes, the control plane on a LAN
    "100.64.0.1",  # CGNAT: some clouds' internal services
    "127.0.0.1", "0.0.0.0",  # noqa: S104
    "fd00:10:42::5", "fe80::1", "::1", "::",  # IPv6 ULA (dual-stack pod networks), link-local, loopback
]


@VARIANTS
@pytest.mark.parametrize("ip", METADATA)
@pytest.mark.parametrize("port", [80, 443, 8080])
def test_the_metadata_address_is_never_reachable(caps: ClusterCaps, ip: str, port: int) -> None:
    assert not allowed(caps, Destination(ip, port))


@VARIANTS
@pytest.mark.parametrize("ip", PRIVATE)
@pytest.mark.parametrize(("port", "protocol"), [(443, "TCP"), (6443, "TCP"), (10250, "TCP"), (5432, "TCP"),
                                                (53, "UDP"), (443, "UDP")])
def test_private_ranges_are_not_reachable_as_addresses(caps: ClusterCaps, ip: str, port: int, protocol: str) -> None:
    assert not allowed(caps, Destination(ip, port, protocol))


@VARIANTS
def test_another_tenants_pods_are_not_reachable(caps: ClusterCaps) -> None:
    for port in (80, 8080, 53):
        assert not allowed(caps, Destination(OTHER_TENANT.ip, port, pod=OTHER_TENANT))


@VARIANTS
@pytest.mark.parametrize("port", [25, 465, 587])
@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:2800:220:1::1"])
def test_smtp_is_never_allowed(caps: ClusterCaps, port: int, ip: str) -> None:
    assert not allowed(caps, Destination(ip, port))


@VARIANTS
def test_public_https_is_allowed(caps: ClusterCaps) -> None:
    for ip in ("1.1.1.1", "93.184.216.34", "140.82.112.3"):
        assert allowed(caps, Destination(ip, 443))
        assert allowed(caps, Destination(ip, 80))
        assert allowed(caps, Destination(ip, 443, "UDP"))  # HTTP/3
    # public IPv6 only where the cluster is dual-stack (kube-router 1.x, see the renderer)
    assert allowed(caps, Destination("2606:4700:4700::1111", 443)) == caps.ipv6_egress


@VARIANTS
@pytest.mark.parametrize("protocol", ["UDP", "TCP"])
def test_dns_reaches_the_cluster_dns_and_nothing_else(caps: ClusterCaps, protocol: str) -> None:
    assert allowed(caps, Destination("10.42.0.10", 53, protocol, pod=dns_pod(caps)))
    ipv6_dns = dns_pod(caps, "fd00:10:42::a")
    assert allowed(caps, Destination(ipv6_dns.ip, 53, protocol, pod=ipv6_dns))  # selectors: any IP family
    for resolver in ("8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860:4860::8888"):
        assert not allowed(caps, Destination(resolver, 53, protocol)), resolver
    # the DNS Service's ClusterIP as a bare address (kube-proxy hands policies the pod's address instead)
    assert not allowed(caps, Destination("10.43.0.10", 53, protocol))
    other_system_pod = Pod(kube_system(caps), {"k8s-app": "metrics-server"}, "10.42.0.11")
    assert not allowed(caps, Destination(other_system_pod.ip, 53, protocol, pod=other_system_pod))


@VARIANTS
def test_the_cluster_dns_is_open_on_the_dns_port_only(caps: ClusterCaps) -> None:
    dns = dns_pod(caps)
    for port in (9153, 8080, 443, 22):
        assert not allowed(caps, Destination(dns.ip, port, pod=dns))


def test_from_1_21_only_kube_system_counts_as_the_cluster_dns() -> None:
    impostor = Pod(OTHER_TENANT.namespace, {"k8s-app": "kube-dns"}, "10.42.3.4")
    assert not allowed(NEW, Destination(impostor.ip, 53, "UDP", pod=impostor))


def test_on_1_20_the_dns_pods_of_any_namespace_count() -> None:
    """No namespace carries its name as a label before 1.21 (decision 0009): the peer is the kube-dns pods of
    every namespace, which the platform never labels so in a project."""
    impostor = Pod(OTHER_TENANT.namespace, {"k8s-app": "kube-dns"}, "10.42.3.4")
    assert allowed(OLD, Destination(impostor.ip, 53, "UDP", pod=impostor))


@VARIANTS
def test_the_projects_own_pods_are_reachable(caps: ClusterCaps) -> None:
    for port in (5432, 8080, 53):
        assert allowed(caps, Destination(NEIGHBOUR.ip, port, pod=NEIGHBOUR))


@VARIANTS
def test_rendered_objects_validate(caps: ClusterCaps) -> None:
    version = latest_version() if caps.network_policy_end_port else all_versions()[0]
    for obj in objects(caps):
        kubernetes_validate.validate(obj, version, strict=True)


# --- the evaluator, on the spec's own cases ---------------------------------------------------------------------


def _policy(egress: list[dict[str, Any]] | None, types: list[str] | None = None,
            pod_selector: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": pod_selector or {}}
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": PROJECT_NS.name}, "spec": spec}


def test_evaluator_isolation_and_union() -> None:
    public = Destination("1.1.1.1", 443)
    assert egress_allowed([], APP, public)  # no policy: not isolated
    assert egress_allowed([_policy(None, ["Ingress"])], APP, public)  # an ingress-only policy isolates nothing
    assert not egress_allowed([_policy([], ["Egress"])], APP, public)  # isolated, no rule: deny all
    assert not egress_allowed([_policy(None, ["Egress"], {"matchLabels": {LABEL_APP: "web"}})], APP, public)
    assert egress_allowed([_policy(None, ["Egress"], {"matchLabels": {LABEL_APP: "db"}})], APP, public)
    deny_all, allow_all = _policy([], ["Egress"]), _policy([{}], ["Egress"])
    assert egress_allowed([deny_all, allow_all], APP, public)  # union: any policy's rule allows


def test_evaluator_peers_and_ports() -> None:
    dns = dns_pod(NEW)
    both = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    either = [{"namespaceSelector": both["namespaceSelector"]}, {"podSelector": both["podSelector"]}]
    other = Pod(kube_system(NEW), {"k8s-app": "other"}, "10.42.0.12")
    assert egress_allowed([_policy([{"to": [both]}], ["Egress"])], APP, Destination(dns.ip, 53, pod=dns))
    assert not egress_allowed([_policy([{"to": [both]}], ["Egress"])], APP, Destination(other.ip, 53, pod=other))
    assert egress_allowed([_policy([{"to": either}], ["Egress"])], APP, Destination(other.ip, 53, pod=other))
    # podSelector alone: the policy's own namespace only
    alone = _policy([{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}], ["Egress"])
    assert not egress_allowed([alone], APP, Destination(dns.ip, 53, pod=dns))
    block = _policy([{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                      "ports": [{"port": 1000, "endPort": 2000}]}], ["Egress"])
    assert egress_allowed([block], APP, Destination("10.2.0.1", 1500))
    assert not egress_allowed([block], APP, Destination("10.1.0.1", 1500))  # except
    assert not egress_allowed([block], APP, Destination("10.2.0.1", 2001))  # past endPort
    assert not egress_allowed([block], APP, Destination("10.2.0.1", 1500, "UDP"))  # protocol defaults to TCP


def test_evaluator_selector_expressions() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "3"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "c", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchLabels": {"a": "1", "b": "3"}}, labels)
