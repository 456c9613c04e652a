"""`app_metrics`: CPU and memory of an app's pods, sampled over a short window, with restarts and OOM kills.

From `metrics.k8s.io` (PodMetrics) when the cluster serves it, otherwise from each node's kubelet Summary API
through the API server's node proxy; the parsing is `workflows.domain.pod_metrics`. Read-only. The pods come
from the API (by the app's label), so a pod no source reports on still shows its restarts and OOM kills.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity

from workflows.activities.kube_call import _k8s, kube_call
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.labels import LABEL_APP, LABEL_RELEASE
from workflows.domain.pod_metrics import Usage, parse_pod_metrics, parse_summary, pod_facts, summarize
from workflows.domain.scaling_contract import AppMetrics, MetricsInput, MetricsSource


class MetricsActivities:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def _sample(self, inp: MetricsInput, source: MetricsSource, nodes: set[str],
                      notes: list[str]) -> dict[str, Usage]:
        if source == "metrics.k8s.io":
            items = await self.kube.list_objects(
                "metrics.k8s.io/v1beta1", "PodMetrics", inp.namespace, label_selector=f"{LABEL_APP}={inp.app}")
            return parse_pod_metrics(items)
        out: dict[str, Usage] = {}
        for node in sorted(nodes):
            try:
                out.update(parse_summary(await self.kube.node_stats_summary(node), inp.namespace))
            except KubeError as e:  # one node's kubelet down costs its pods' numbers, not the answer
                note = f"node {node}: kubelet stats unreadable ({str(e)[:120]})"
                if note not in notes:
                    notes.append(note)
        return out

    @activity.defn
    async def app_metrics(self, inp: MetricsInput) -> AppMetrics:
        pods = await kube_call(lambda: self.kube.list_objects(
            "v1", "Pod", inp.namespace, label_selector=f"{LABEL_APP}={inp.app}"))
        pods.sort(key=lambda p: (str(((p.get("metadata") or {}).get("labels") or {}).get(LABEL_RELEASE, "")),
                                 str(p["metadata"]["name"])))
        shown, omitted = pods[:inp.max_pods], max(0, len(pods) - inp.max_pods)
        facts = [pod_facts(p) for p in shown]
        if not facts:
            return AppMetrics(notes=["the app has no pods"])
        source: MetricsSource = "metrics.k8s.io" if await kube_call(self.kube.metrics_api_served) else "kubelet"
        nodes = {f.node for f in facts if f.node}
        notes: list[str] = []
        samples: list[dict[str, Usage]] = []
        gap = inp.window_seconds / (inp.samples - 1) if inp.samples > 1 else 0.0
        for i in range(inp.samples):
            if i:
                activity.heartbeat(i)
                await asyncio.sleep(gap)
            try:
                samples.append(await self._sample(inp, source, nodes, notes))
            except KubeError as e:
                if source != "metrics.k8s.io":
                    raise _k8s(e) from e
                # served but refused (RBAC) or failing: the kubelets answer the same question
                notes.append(f"metrics.k8s.io unreadable ({str(e)[:120]}): read from the kubelets")
                source = "kubelet"
                samples.append(await self._sample(inp, source, nodes, notes))
        out = []
        for f in facts:
            seen = [s[f.pod] for s in samples if f.pod in s]
            if not seen and f.running:
                notes.append(f"{f.pod}: no usage reported by {source} yet")
            out.append(summarize(f, seen))
        if omitted:
            notes.insert(0, f"{omitted} more pods not shown (at most {inp.max_pods})")
        return AppMetrics(source=source, pods=out, notes=notes[:10])

    def all(self) -> list[Callable[..., Any]]:
        return [self.app_metrics]
