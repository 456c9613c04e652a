"""A project's namespace and its guardrails as Kubernetes objects: Pod Security labels, ResourceQuota,
LimitRange and the NetworkPolicies that keep ingress to the edge and egress to the public internet; and the labels
every object of a project carries.

Pure: the deploy activities apply these objects before any release of the project."""

from __future__ import annotations

from typing import Any

from workflows.domain.labels import (
    LABEL_DATABASE,
    LABEL_MANAGED_BY,
    LABEL_PROJECT,
    LABEL_TENANT,
    MANAGED_BY,
)
from workflows.domain.specs import ClusterCaps, Guardrails
from workflows.render.objects import meta

GUARDRAILS = "guardrails"
INGRESS_POLICY = "ingress-from-edge-and-project"
EGRESS_POLICY = "egress-public-only"

SMTP_PORTS: tuple[int, ...] = (25, 465, 587)

PRIVATE_IPV4: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT; also where some clouds put internal services
    "169.254.0.0/16",  # link-local, including the 169.254.169.254 cloud metadata endpoint
    "127.0.0.0/8",
    "0.0.0.0/8",  # "this host": Linux connects 0.0.0.0 to the node's own loopback
    "224.0.0.0/4",
    "240.0.0.0/4",
)
PRIVATE_IPV6: tuple[str, ...] = (
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "::/128",  # unspecified: connects to the node's own loopback, like 0.0.0.0
    "ff00::/8",
    # IPv4 written as IPv6: mapped addresses and the NAT64 prefixes reach the IPv4 ranges above (the metadata
    # address among them) through a dual-stack socket or a NAT64 gateway; a dual-stack pod reaches public IPv4
    # natively, so nothing legitimate needs them
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
)

DNS_PORT = 53
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

FALLBACK_TCP_PORTS: tuple[int, ...] = (22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9418, 27017)
FALLBACK_UDP_PORTS: tuple[int, ...] = (443, 123)

PSA_LABELS: dict[str, str] = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def project_labels(tenant: str, project: str) -> dict[str, str]:
    """The labels of every object the platform creates for a project."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TENANT: tenant, LABEL_PROJECT: project}


# --- Namespace and its guardrails -----------------------------------------------------------------------------


def _port_ranges_excluding(blocked: tuple[int, ...], low: int = 1, high: int = 65535) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    start = low
    for port in sorted(set(blocked)):
        if start <= port - 1:
            ranges.append((start, port - 1))
        start = port + 1
    if start <= high:
        ranges.append((start, high))
    return ranges


def _port_entry(protocol: str, first: int, last: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"protocol": protocol, "port": first}
    if last != first:
        entry["endPort"] = last
    return entry


def public_egress_ports(caps: ClusterCaps) -> list[dict[str, Any]]:
    """The ports an app may reach on public addresses: everything but SMTP and DNS where the cluster can say
    so (DNS goes to the cluster's resolver only, see `cluster_dns_peer`)."""
    if caps.network_policy_end_port:
        tcp = [_port_entry("TCP", lo, hi) for lo, hi in _port_ranges_excluding((*SMTP_PORTS, DNS_PORT))]
        udp = [_port_entry("UDP", lo, hi) for lo, hi in _port_ranges_excluding((DNS_PORT,))]
        return [*tcp, *udp]
    return [
        *({"protocol": "TCP", "port": p} for p in FALLBACK_TCP_PORTS),
        *({"protocol": "UDP", "port": p} for p in FALLBACK_UDP_PORTS),
    ]


def cluster_dns_peer(guard: Guardrails, caps: ClusterCaps) -> dict[str, Any]:
    """The cluster DNS as a NetworkPolicy peer: its pods (`k8s-app=kube-dns` in `kube-system` on k3s and
    kubeadm), selected by labels, so the rule holds whatever the cluster's IP families and the pods' addresses.

    From 1.21 the API server labels every namespace with its name (`kubernetes.io/metadata.name`, immutable),
    which selects exactly the DNS namespace. Before 1.21 nothing labels it, so the peer is the DNS pods of any
    namespace: pod labels in a project namespace are the platform's own (tenants never choose them), and the
    rule opens only the DNS port. See docs/decisions/0009-dns-egress.md."""
    dns_key, dns_value = guard.dns_pod_label
    namespaces: dict[str, Any] = {}
    if caps.namespace_name_label:
        namespaces = {"matchLabels": {NAMESPACE_NAME_LABEL: guard.dns_namespace}}
    return {"namespaceSelector": namespaces, "podSelector": {"matchLabels": {dns_key: dns_value}}}


def namespace_objects(
    tenant: str, project: str, namespace: str, guard: Guardrails, caps: ClusterCaps
) -> list[dict[str, Any]]:
    """A project's namespace and its guardrails, in apply order (the namespace first).

    - Pod Security `restricted` is enforced, so no pod in it can run privileged whatever creates it.
    - ResourceQuota caps what the project may hold; LoadBalancer and NodePort Services are forbidden because
      traffic enters only through the platform's edge.
    - LimitRange gives containers that declare nothing a request and a limit (the quota would otherwise
      refuse them) and caps any one container.
    - Ingress is allowed only from the edge's namespace and from the project's own pods (database pods excepted:
      their own policy admits only their app).
    - Egress is allowed to the cluster DNS (its pods, on port 53 only: no other resolver, so DNS cannot carry
      data past the platform), to the project's own pods, and to public IPv4/IPv6 addresses only: private,
      link-local (cloud metadata), loopback, multicast and reserved ranges are cut out, so an app cannot reach
      the node, the control plane or other tenants.

    SMTP (25, 465, 587) is never allowed. NetworkPolicy can only allow, so "every port but SMTP" is written
    as port ranges with `endPort`. A cluster without `endPort` (before 1.22) silently drops the field, which
    would turn each range into its first port only; there the policy fails closed instead, to an explicit
    list of common ports (`FALLBACK_TCP_PORTS`, `FALLBACK_UDP_PORTS`).
    """
    labels = project_labels(tenant, project)
    ns: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta(namespace, None, {**labels, **PSA_LABELS}),
    }
    memory = f"{guard.quota_memory_mib}Mi"
    quota: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta(GUARDRAILS, namespace, labels),
        "spec": {
            "hard": {
                "requests.cpu": f"{guard.quota_cpu_millicores}m",
                "requests.memory": memory,
                # memory request = limit for platform pods; capping limits too stops a hand-made pod with a
                # small request and a huge limit from overcommitting the node
                "limits.memory": memory,
                "pods": str(guard.quota_pods),
                "services": str(guard.quota_services),
                "persistentvolumeclaims": str(guard.quota_pvcs),
                "requests.storage": f"{guard.quota_storage_gib}Gi",
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        },
    }
    limits: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta(GUARDRAILS, namespace, labels),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {
                        # bursting to a few times the request is harmless for CPU (throttled, never killed);
                        # memory is not compressible, so its limit is its request
                        "cpu": f"{min(4 * guard.default_cpu_millicores, guard.max_cpu_millicores)}m",
                        "memory": f"{guard.default_memory_mib}Mi",
                    },
                    "defaultRequest": {
                        "cpu": f"{guard.default_cpu_millicores}m",
                        "memory": f"{guard.default_memory_mib}Mi",
                    },
                    "max": {
                        "cpu": f"{guard.max_cpu_millicores}m",
                        "memory": f"{guard.max_memory_mib}Mi",
                    },
                }
            ]
        },
    }
    edge_key, edge_value = guard.edge_namespace_label
    ingress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(INGRESS_POLICY, namespace, labels),
        "spec": {
            # database pods are left to their own policy (workflows/render/database.py): policies only add, so
            # this one selecting them would let every pod of the project (and the edge) reach every database
            "podSelector": {"matchExpressions": [{"key": LABEL_DATABASE, "operator": "DoesNotExist"}]},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {edge_key: edge_value}}},
                        {"podSelector": {}},
                    ]
                }
            ],
        },
    }
    ports = public_egress_ports(caps)
    rules: list[dict[str, Any]] = [
        {"to": [cluster_dns_peer(guard, caps)],
         "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]},
        {"to": [{"podSelector": {}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_IPV4)}}], "ports": ports},
    ]
    if caps.ipv6_egress:
        # Only on dual-stack clusters: kube-router 1.x (k3s ~1.20-1.23) stops syncing every policy when it
        # meets an IPv6 ipBlock on an IPv4-only node (cloudnativelabs/kube-router#1245).
        rules.append({"to": [{"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_IPV6)}}], "ports": ports})
    egress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(EGRESS_POLICY, namespace, labels),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    }
    return [ns, quota, limits, ingress, egress]
