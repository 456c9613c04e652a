"""A fake metrics-server behind a fake API server: HTTP on 127.0.0.1 (aiohttp, in the caller's event loop)
answering the reads `app_metrics` makes, in the documented wire formats, so the Kubernetes adapter and the
metrics activity are tested over real HTTP. metrics-server has no binary reachable here, and the testbed runs
none; its kubelets serve the real Summary API (that path is the lead's `node` test).

Endpoints, as the Kubernetes API documents them:
- `GET /apis/metrics.k8s.io/v1beta1`: the group's `APIResourceList` (`pods`, `nodes`) while `serve_metrics`;
  404 otherwise (the group not registered), or 503 with `metrics_backend_down` (an APIService whose backend is
  unavailable, as the aggregator answers).
- `GET /apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods?labelSelector=k=v`: a `PodMetricsList` of the pods
  matching the selector (k8s.io/metrics v1beta1 `PodMetrics`: `metadata`, `timestamp`, `window`,
  `containers[].usage.{cpu,memory}` quantities). Each request answers the next of a pod's recorded usages
  (the last repeats), as successive scrapes would; 403 with `forbid_pod_metrics`.
- `GET /api/v1/namespaces/<ns>/pods?labelSelector=k=v`: a `PodList` of the stored pods.
- `GET /api/v1/nodes/<node>/proxy/stats/summary`: the kubelet Summary (stats/v1alpha1) of that node's pods,
  from the same usages as integers (`usageNanoCores`, `workingSetBytes`); 503 for a node in `kubelet_down`
  (the API server's proxy answer when the kubelet does not respond).
Not implemented: watches, other resources, node metrics, field selectors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.metrics_samples import pod_metrics, pod_metrics_list, summary, summary_pod

FakeUsage = tuple[int, int]  # (nanocores, working-set bytes)


def _matches(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",")))


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


@dataclass
class FakeMetricsServer:
    pods: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, list[FakeUsage]] = field(default_factory=dict)  # per pod: one per scrape, the last repeats
    serve_metrics: bool = True
    metrics_backend_down: bool = False
    kubelet_down: set[str] = field(default_factory=set)
    forbid_pod_metrics: bool = False  # the group served, listing PodMetrics refused (RBAC without the rule)
    requests: list[str] = field(default_factory=list)
    _scrapes: dict[str, int] = field(default_factory=dict)

    def _next(self, pod: str) -> FakeUsage | None:
        series = self.usage.get(pod)
        if not series:
            return None
        i = self._scrapes.get(pod, 0)
        self._scrapes[pod] = i + 1
        return series[min(i, len(series) - 1)]

    def _pods(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.pods if (namespace is None or p["metadata"]["namespace"] == namespace)
                and _matches(p, selector)]

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/")
        self.requests.append(path)
        parts = path.strip("/").split("/")
        if path == "/apis/metrics.k8s.io/v1beta1":
            if self.metrics_backend_down:
                return _status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            if not self.serve_metrics:
                return _status(404, "NotFound", "the server could not find the requested resource")
            return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                      "groupVersion": "metrics.k8s.io/v1beta1", "resources": [
                                          {"name": "nodes", "namespaced": False, "kind": "NodeMetrics",
                                           "verbs": ["get", "list"]},
                                          {"name": "pods", "namespaced": True, "kind": "PodMetrics",
                                           "verbs": ["get", "list"]}]})
        if parts[:3] == ["apis", "metrics.k8s.io", "v1beta1"] and len(parts) == 6 and parts[5] == "pods":
            if not self.serve_metrics:
                return _status(404, "NotFound", "the server could not find the requested resource")
            if self.forbid_pod_metrics:
                return _status(403, "Forbidden", f'pods.metrics.k8s.io is forbidden: User "worker" cannot list '
                                                 f'resource "pods" in API group "metrics.k8s.io" in the namespace '
                                                 f'"{parts[4]}"')
            items = []
            for p in self._pods(parts[4], request.query.get("labelSelector")):
                got = self._next(p["metadata"]["name"])
                if got is not None:
                    items.append(pod_metrics(p["metadata"]["name"], f"{got[0]}n", f"{got[1] // 1024}Ki",
                                             namespace=parts[4]))
            return web.json_response(pod_metrics_list(*items))
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 5 and parts[4] == "pods":
            return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                      "items": self._pods(parts[3], request.query.get("labelSelector"))})
        if parts[:3] == ["api", "v1", "nodes"] and parts[4:] == ["proxy", "stats", "summary"]:
            node = parts[3]
            if node in self.kubelet_down:
                return _status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {node}:10250")
            entries = []
            for p in self.pods:
                if p["spec"].get("nodeName") != node:
                    continue
                got = self._next(p["metadata"]["name"])
                if got is not None:
                    entries.append(summary_pod(p["metadata"]["name"], got[0], got[1],
                                               namespace=p["metadata"]["namespace"]))
            return web.json_response(summary(node, *entries))
        return _status(404, "NotFound", "the server could not find the requested resource")


@asynccontextmanager
async def fake_metrics_server_running(fake: FakeMetricsServer) -> AsyncIterator[str]:
    """Serve `fake` on a free loopback port; yields its base URL (a kubeconfig's `server`)."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
