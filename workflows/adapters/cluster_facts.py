"""The preflight's questions to the cluster: discovery, RuntimeClasses, nodes, StorageClasses, IngressClasses,
CRDs, one SelfSubjectAccessReview per permission, and a TCP connect to BuildKit. The answers become
`workflows.domain.preflight.ClusterFacts`; a question the API refuses (403) or cannot answer leaves its fact
None with the reason, so one missing read permission costs that check, not the whole preflight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from workflows.adapters.kube import Kube, KubeError
from workflows.domain.permissions import Permission
from workflows.domain.preflight import (
    DEFAULT_INGRESS_CLASS,
    ClusterFacts,
    Expectations,
    Node,
    Reachability,
    permissions_to_ask,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _read(facts: ClusterFacts, fact: str, ask: Callable[[], Awaitable[T]]) -> T | None:
    try:
        return await ask()
    except KubeError as e:
        facts.unreadable[fact] = str(e)[:300]
        return None


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {i["metadata"]["name"] for i in items}


def _node(item: dict[str, Any]) -> Node:
    taints = tuple((t.get("key", ""), t.get("value", ""), t.get("effect", ""))
                   for t in (item.get("spec") or {}).get("taints") or [])
    return Node(item["metadata"]["name"], dict(item["metadata"].get("labels") or {}), taints)


def _ingress_classes(items: list[dict[str, Any]]) -> dict[str, bool]:
    return {i["metadata"]["name"]: (i["metadata"].get("annotations") or {}).get(DEFAULT_INGRESS_CLASS) == "true"
            for i in items}


def access_review(p: Permission) -> dict[str, Any]:
    """The SelfSubjectAccessReview asking whether this identity may `p` (a namespaced resource without a
    namespace: in all namespaces, what a ClusterRoleBinding grants)."""
    attrs: dict[str, Any] = {"group": p.group, "resource": p.base_resource, "verb": p.verb}
    if p.subresource:
        attrs["subresource"] = p.subresource
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
            "spec": {"resourceAttributes": attrs}}


async def _allowed(kube: Kube, p: Permission) -> bool:
    answer = await kube.create(access_review(p))
    return bool((answer.get("status") or {}).get("allowed"))


def buildkit_endpoint(addr: str) -> tuple[str, int] | None:
    """host, port of a `tcp://host:port` BuildKit address; None for other schemes (unix sockets)."""
    parts = urlsplit(addr)
    if parts.scheme != "tcp" or not parts.hostname:
        return None
    return parts.hostname, parts.port or 1234


async def probe_tcp(addr: str, timeout: float) -> Reachability:
    endpoint = buildkit_endpoint(addr)
    if endpoint is None:
        return Reachability(False, f"{addr!r} is not a tcp://host:port address")
    host, port = endpoint
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return Reachability(False, f"no TCP answer from {host}:{port} within {timeout:g} s")
    except OSError as e:
        return Reachability(False, f"TCP connect to {host}:{port}: {e.strerror or e}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Reachability(True, f"TCP connect to {host}:{port} succeeded")


async def gather_facts(kube: Kube, expect: Expectations, timeout: float = 5.0) -> ClusterFacts:
    """Ask the cluster everything `run_checks` needs. Raises `KubeError` only when discovery itself fails
    (no API server to talk to); every other refusal is recorded in `unreadable`."""
    facts = ClusterFacts(served_apis=await kube.served_api_versions())
    facts.runtime_classes = await _read(facts, "runtime_classes", lambda: _names_of(kube, "node.k8s.io/v1",
                                                                                    "RuntimeClass"))
    nodes = await _read(facts, "nodes", lambda: kube.list_objects("v1", "Node", None))
    facts.nodes = [_node(n) for n in nodes] if nodes is not None else None
    facts.storage_classes = await _read(facts, "storage_classes",
                                        lambda: _names_of(kube, "storage.k8s.io/v1", "StorageClass"))
    ingress = await _read(facts, "ingress_classes",
                          lambda: kube.list_objects("networking.k8s.io/v1", "IngressClass", None))
    facts.ingress_classes = _ingress_classes(ingress) if ingress is not None else None
    facts.crds = await _read(facts, "crds",
                             lambda: _names_of(kube, "apiextensions.k8s.io/v1", "CustomResourceDefinition"))
    asked = permissions_to_ask(expect)
    answers = await asyncio.gather(*(_allowed(kube, p) for p in asked), return_exceptions=True)
    for p, answer in zip(asked, answers, strict=True):
        if isinstance(answer, KubeError):
            facts.unreadable["permissions"] = str(answer)[:300]
        elif isinstance(answer, BaseException):
            raise answer
        else:
            facts.allowed[p] = answer
    if expect.builder == "buildkit":
        facts.buildkit = await probe_tcp(expect.buildkit_addr, timeout)
    return facts


async def _names_of(kube: Kube, api_version: str, kind: str) -> set[str]:
    return _names(await kube.list_objects(api_version, kind, None))
