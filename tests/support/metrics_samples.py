"""Answers in the shapes the two metrics sources really give, shared by the parsers' unit tests and the fake
metrics server: a metrics-server `PodMetricsList` (metrics.k8s.io/v1beta1, quantities as strings) and a kubelet
`/stats/summary?only_cpu_and_memory=true` (stats/v1alpha1, integers), cut down to the fields those carry
(k8s.io/metrics/pkg/apis/metrics/v1beta1/types.go, k8s.io/kubelet/pkg/apis/stats/v1alpha1/types.go)."""

from __future__ import annotations

from typing import Any

NAMESPACE = "dm-acme-shop-x"
POD_A = "web-r3-6d4cf56db6-8x2kq"
POD_B = "web-r3-6d4cf56db6-qq7wz"


def pod_metrics(pod: str, cpu: str, memory: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "metadata": {"name": pod, "namespace": namespace, "creationTimestamp": "2026-12-02T04:20:11Z",
                     "labels": {"deploy-mcp/app": "web", "deploy-mcp/release": "web-r3"}},
        "timestamp": "2026-12-02T04:20:03Z", "window": "15.033s",
        "containers": [{"name": "app", "usage": {"cpu": cpu, "memory": memory}}],
    }


def pod_metrics_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": list(items)}


def _cpu(nanocores: int) -> dict[str, Any]:
    return {"time": "2026-12-02T04:20:05Z", "usageNanoCores": nanocores, "usageCoreNanoSeconds": 81234567890}


def _memory(working_set: int) -> dict[str, Any]:
    return {"time": "2026-12-02T04:20:05Z", "availableBytes": 244318208, "usageBytes": working_set + 4096000,
            "workingSetBytes": working_set, "rssBytes": working_set - 2048000, "pageFaults": 5412,
            "majorPageFaults": 3}


def summary_pod(pod: str, nanocores: int, working_set: int, namespace: str = NAMESPACE,
                per_container: bool = True) -> dict[str, Any]:
    """One `pods[]` entry; `per_container=False` as a runtime reporting pod-level stats only (no containers)."""
    entry: dict[str, Any] = {
        "podRef": {"name": pod, "namespace": namespace, "uid": "5b0e7c1e-3a55-4f0c-9a4e-6a1f0d2c9e01"},
        "startTime": "2026-12-02T04:01:40Z",
        "containers": [{"name": "app", "startTime": "2026-12-02T04:01:42Z", "cpu": _cpu(nanocores),
                        "memory": _memory(working_set)}] if per_container else [],
        "cpu": _cpu(nanocores + 150000),
        "memory": _memory(working_set + 1048576),
    }
    return entry


def summary(node: str, *pods: dict[str, Any]) -> dict[str, Any]:
    return {"node": {"nodeName": node, "startTime": "2026-12-01T22:00:00Z", "cpu": _cpu(812345678),
                     "memory": _memory(1812345678)},
            "pods": list(pods)}


def app_pod(name: str, node: str, *, restarts: int = 0, last_reason: str | None = None,
            ready: bool = True) -> dict[str, Any]:
    """A release pod as the API returns it (the fields app_metrics reads)."""
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "app", "ready": ready, "restartCount": restarts,
                               "state": {"running": {"startedAt": "2026-12-02T04:05:00Z"}}}],
    }
    if last_reason:
        status["containerStatuses"][0]["lastState"] = {"terminated": {
            "exitCode": 137 if last_reason == "OOMKilled" else 1, "reason": last_reason,
            "startedAt": "2026-12-02T04:02:00Z", "finishedAt": "2026-12-02T04:04:59Z"}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"deploy-mcp/app": "web", "deploy-mcp/release": name.rsplit("-", 2)[0]}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}}]},
        "status": status,
    }
