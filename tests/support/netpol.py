"""What a set of NetworkPolicies allows, evaluated the way the NetworkPolicy spec (networking.k8s.io/v1) says a
conforming CNI enforces it, so tests can assert the meaning of rendered policies on a testbed whose CNI
enforces none.

Only egress, from one pod, to one destination (an address, a port and a protocol, and the pod behind the
address when there is one):
- a pod is isolated for egress when a policy of its namespace selects it (`podSelector`) and has `Egress` in
  `policyTypes` (absent: when it has an `egress` section); a pod no policy isolates may send anywhere;
- an isolated pod may send where at least one egress rule of at least one selecting policy allows (a union:
  policies only allow, never deny);
- a rule allows when one of its `to` peers matches (no `to`: every destination) and one of its `ports` matches
  (no `ports`: every port of every protocol);
- peers: `ipBlock` matches an address inside `cidr` and outside each `except`; `podSelector` and
  `namespaceSelector` match pods (both in one peer: both must match; `podSelector` alone: pods of the policy's
  own namespace; `namespaceSelector` alone: every pod of the matching namespaces; `{}` matches all);
- ports: `protocol` (default TCP) and `port` (absent: all of that protocol), up to `endPort` when set.

Selectors take `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist). Named ports are refused
rather than guessed: the platform's policies use numbers only. A Service's ClusterIP is never a destination
here: kube-proxy rewrites it to a pod's address before policies see the packet, so a test names the pod.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pod:
    namespace: Namespace
    labels: Mapping[str, str]
    ip: str


@dataclass(frozen=True)
class Destination:
    ip: str
    port: int
    protocol: str = "TCP"
    pod: Pod | None = None  # the pod this address belongs to, if it is one


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector: every `matchLabels` pair and every `matchExpressions` requirement hold ({} matches all)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, dest: Destination) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(dest.ip)
        cidr = ipaddress.ip_network(block["cidr"])
        if ip.version != cidr.version or ip not in cidr:
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or []
                       if ipaddress.ip_network(e).version == ip.version)
    pod = dest.pod
    if pod is None:
        return False  # selectors match pods, never a bare address
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], pod.namespace.labels):
            return False
    elif pod.namespace.name != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector") or {}, pod.labels)


def _port_matches(ports: Iterable[Mapping[str, Any]] | None, dest: Destination) -> bool:
    entries = list(ports or [])
    if not entries:
        return True
    for entry in entries:
        if entry.get("protocol", "TCP") != dest.protocol:
            continue
        port = entry.get("port")
        if port is None:
            return True
        if isinstance(port, str):
            raise ValueError(f"named port {port!r}: this evaluator takes numbers only")
        if port <= dest.port <= entry.get("endPort", port):
            return True
    return False


def _isolates_egress(spec: Mapping[str, Any]) -> bool:
    types = spec.get("policyTypes")
    return "Egress" in types if types is not None else "egress" in spec


def egress_allowed(objects: Iterable[Mapping[str, Any]], source: Pod, dest: Destination) -> bool:
    """Whether `source` may open a connection to `dest` under the NetworkPolicies among `objects`."""
    selecting = [
        o for o in objects
        if o.get("kind") == "NetworkPolicy" and o["metadata"].get("namespace") == source.namespace.name
        and selector_matches(o["spec"].get("podSelector") or {}, source.labels) and _isolates_egress(o["spec"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        namespace = policy["metadata"]["namespace"]
        for rule in policy["spec"].get("egress") or []:
            peers = rule.get("to")
            if peers and not any(_peer_matches(p, namespace, dest) for p in peers):
                continue
            if _port_matches(rule.get("ports"), dest):
                return True
    return False


def _isolates_ingress(spec: Mapping[str, Any]) -> bool:
    types = spec.get("policyTypes")
    return "Ingress" in types if types is not None else True  # the spec's default: Ingress always


def ingress_allowed(objects: Iterable[Mapping[str, Any]], source: Pod, target: Pod, port: int,
                    protocol: str = "TCP") -> bool:
    """Whether `target` accepts a connection from `source` on `port` under the NetworkPolicies among `objects`:
    the same union rule as egress, with `from` peers matched against the source pod."""
    selecting = [
        o for o in objects
        if o.get("kind") == "NetworkPolicy" and o["metadata"].get("namespace") == target.namespace.name
        and selector_matches(o["spec"].get("podSelector") or {}, target.labels) and _isolates_ingress(o["spec"])
    ]
    if not selecting:
        return True
    as_dest = Destination(source.ip, port, protocol, source)  # peers match the source pod; ports the target's
    for policy in selecting:
        namespace = policy["metadata"]["namespace"]
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            if peers and not any(_peer_matches(p, namespace, as_dest) for p in peers):
                continue
            if _port_matches(rule.get("ports"), Destination(target.ip, port, protocol)):
                return True
    return False


def connection_allowed(objects: Iterable[Mapping[str, Any]], source: Pod, target: Pod, port: int,
                       protocol: str = "TCP") -> bool:
    """Both ends agree: the source's egress policies let it out and the target's ingress policies let it in."""
    objs = list(objects)
    return (egress_allowed(objs, source, Destination(target.ip, port, protocol, target))
            and ingress_allowed(objs, source, target, port, protocol))
