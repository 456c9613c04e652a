"""Reading pods' CPU and memory from the two shapes a cluster serves them in, and summing samples into what
`app_metrics` returns. Pure, so both parsers are checked against recorded real-shaped answers.

- `metrics.k8s.io/v1beta1` PodMetrics (metrics-server): `containers[].usage.cpu` / `.memory` as quantities
  ("12345678n", "23456Ki"), each an average over the object's `window`.
- The kubelet Summary API (`/stats/summary`, stats/v1alpha1): `pods[].podRef.{name,namespace}`,
  `pods[].containers[].cpu.usageNanoCores` and `.memory.workingSetBytes` (integers); the pod-level
  `pods[].cpu` / `.memory` when a runtime reports no per-container stats.

Memory is the working set (what the OOM killer and metrics-server count), not the page cache too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.domain.quantities import quantity
from workflows.domain.scaling_contract import PodUsage

MIB = 2**20


@dataclass(frozen=True)
class Usage:
    """One pod at one moment: CPU in nanocores, working-set memory in bytes (None: not reported)."""

    cpu_nanocores: int | None
    memory_bytes: int | None


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _quantity_int(text: Any, scale: int = 1) -> int | None:
    if text is None:
        return None
    try:
        return int(quantity(str(text)) * scale)
    except ValueError:
        return None


def parse_pod_metrics(items: Iterable[Mapping[str, Any]]) -> dict[str, Usage]:
    """PodMetrics objects (a PodMetricsList's `items`) -> usage per pod name."""
    out: dict[str, Usage] = {}
    for item in items:
        name = str((item.get("metadata") or {}).get("name") or "")
        containers = item.get("containers") or []
        out[name] = Usage(
            cpu_nanocores=_sum(_quantity_int((c.get("usage") or {}).get("cpu"), 10**9) for c in containers),
            memory_bytes=_sum(_quantity_int((c.get("usage") or {}).get("memory")) for c in containers))
    return out


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_summary(summary: Mapping[str, Any], namespace: str) -> dict[str, Usage]:
    """A kubelet Summary -> usage per pod name, for the pods of `namespace` on that node."""
    out: dict[str, Usage] = {}
    for pod in summary.get("pods") or []:
        podref = pod.get("podRef") or {}
        if podref.get("namespace") != namespace:
            continue
        containers = pod.get("containers") or []
        cpu = _sum(_int((c.get("cpu") or {}).get("usageNanoCores")) for c in containers)
        mem = _sum(_int((c.get("memory") or {}).get("workingSetBytes")) for c in containers)
        out[str(podref.get("name"))] = Usage(
            cpu_nanocores=cpu if cpu is not None else _int((pod.get("cpu") or {}).get("usageNanoCores")),
            memory_bytes=mem if mem is not None else _int((pod.get("memory") or {}).get("workingSetBytes")))
    return out


def _millicores(nanocores: int) -> int:
    return round(nanocores / 10**6)


def _mib(value: int) -> float:
    return round(value / MIB, 1)


@dataclass(frozen=True)
class PodFacts:
    """What the pod object says: its name, kubelet, restarts and OOM kills, CPU request and memory limit."""

    pod: str
    node: str | None
    running: bool
    restarts: int
    oom_kills: int
    last_exit: str
    cpu_request_m: int | None
    mem_limit_bytes: int | None


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    """Facts of one pod object. OOM kills: containers whose current or last termination (`state.terminated`,
    `lastState.terminated`) has reason OOMKilled."""
    md, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    restarts = oom = 0
    last = ""
    for cs in status.get("containerStatuses") or []:
        restarts += int(cs.get("restartCount") or 0)
        ended = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if ended:
            if ended.get("reason") == "OOMKilled":
                oom += 1
            last = f"{ended.get('reason') or 'Terminated'} ({ended.get('exitCode')})"
    containers = spec.get("containers") or []
    return PodFacts(
        pod=str(md.get("name")), node=spec.get("nodeName"), running=status.get("phase") == "Running",
        restarts=restarts, oom_kills=oom, last_exit=last,
        cpu_request_m=_sum(_quantity_int(((c.get("resources") or {}).get("requests") or {}).get("cpu"), 1000)
                           for c in containers),
        mem_limit_bytes=_sum(_quantity_int(((c.get("resources") or {}).get("limits") or {}).get("memory"))
                             for c in containers))


def summarize(facts: PodFacts, samples: list[Usage]) -> PodUsage:
    """The pod with its samples (oldest first): CPU now, mean, max (and the request); memory now, max (and the
    limit). A figure nobody reported is left out, so the lists are empty when there were no samples."""
    cpus = [s.cpu_nanocores for s in samples if s.cpu_nanocores is not None]
    mems = [s.memory_bytes for s in samples if s.memory_bytes is not None]
    cpu = [_millicores(cpus[-1]), _millicores(round(sum(cpus) / len(cpus))), _millicores(max(cpus))] if cpus else []
    if cpu and facts.cpu_request_m is not None:
        cpu.append(facts.cpu_request_m)
    mem = [_mib(mems[-1]), _mib(max(mems))] if mems else []
    if mem and facts.mem_limit_bytes is not None:
        mem.append(_mib(facts.mem_limit_bytes))
    return PodUsage(pod=facts.pod, cpu_m=cpu, mem_mib=mem, restarts=facts.restarts, oom_kills=facts.oom_kills,
                    last_exit=facts.last_exit)
