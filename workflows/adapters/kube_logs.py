"""Runtime logs from the Kubernetes pod log API: the LogStore of `deploy-mcp dev` and of clusters without Loki.

Each read lists the app's pods by their platform labels in the project's namespace, fetches every container's
log with `timestamps=true` (the kubelet prefixes each line with its RFC3339Nano time), merges the pods, applies
the same filters LogQL would (workflows.domain.logql.line_filter), and pages with the same cursor contract as Loki
(workflows.domain.log_paging.read_page over the lines in memory).

Limits, acceptable for dev and said here because they are not Loki's: only what the kubelet still holds (the
current and previous container of live pods: a deleted pod's logs are gone), the last TAIL_LINES lines and at
most LIMIT_BYTES per container, re-read on every page.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from workflows.adapters.kube import Kube, KubeError
from workflows.domain.labels import LABEL_APP, LABEL_COMMIT, LABEL_DEPLOYMENT_ID, LABEL_PROJECT, LABEL_TENANT
from workflows.domain.log_paging import Direction, LogLine, LogPage, LogQuery, LogStoreUnavailable, in_order, read_page
from workflows.domain.logql import line_filter
from workflows.domain.names import namespace_name
from workflows.domain.timestamps import NS, parse_rfc3339_ns

TAIL_LINES = 10_000
LIMIT_BYTES = 8 * 1024 * 1024

POD_LABELS = {"tenant": LABEL_TENANT, "project": LABEL_PROJECT, "app": LABEL_APP,
              "deployment_id": LABEL_DEPLOYMENT_ID, "commit_sha": LABEL_COMMIT}
"""Log label -> the pod label the renderer sets (workflows.render.release) and the Alloy pipeline copies."""

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


def parse_pod_log(text: str, labels: dict[str, str]) -> list[LogLine]:
    """Lines of a `timestamps=true` pod log. A line without a stamp keeps the previous line's time."""
    out: list[LogLine] = []
    last = 0
    # split("\n"), not splitlines(): a log line may itself hold \r, \x1c or U+2028, which are not line ends here.
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    for row in rows:
        stamp, _, rest = row.partition(" ")
        try:
            ts, line = parse_rfc3339_ns(stamp), rest
        except ValueError:
            ts, line = last, row
        out.append(LogLine(ts_ns=ts, line=line, labels=labels))
        last = ts
    return out


class PodLogSource(Protocol):
    async def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    async def log(self, namespace: str, pod: str, container: str, *, since_seconds: int, previous: bool) -> str: ...


class KubePodLogs:
    """PodLogSource over the platform's Kube client."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return await self.kube.list_objects("v1", "Pod", namespace, label_selector=label_selector)

    async def log(self, namespace: str, pod: str, container: str, *, since_seconds: int, previous: bool) -> str:
        return await self.kube.pod_log(namespace, pod, container=container, timestamps=True,
                                       since_seconds=since_seconds, limit_bytes=LIMIT_BYTES, tail_lines=TAIL_LINES,
                                       previous=previous)


class KubeLogStore:
    source = "kubernetes"

    def __init__(self, pods: PodLogSource, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.pods = pods
        self.clock = clock

    async def _list(self, selector: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
        namespace = namespace_name(selector["tenant"], selector["project"])
        terms = []
        for name, pod_label in POD_LABELS.items():
            if name in selector:
                if not _LABEL_VALUE.match(selector[name]):
                    return namespace, []  # no pod can carry this value; never paste it into a selector
                terms.append(f"{pod_label}={selector[name]}")
        try:
            pods = await self.pods.pods(namespace, ",".join(terms))
        except KubeError as e:
            raise LogStoreUnavailable(f"The Kubernetes API could not list the app's pods ({e}); logs are "
                                      "temporarily unavailable.") from e
        if "pod" in selector:
            pods = [p for p in pods if (p.get("metadata") or {}).get("name") == selector["pod"]]
        return namespace, pods

    async def _container(self, namespace: str, pod: str, container: str, since_seconds: int, previous: bool,
                         labels: dict[str, str]) -> list[LogLine]:
        try:
            text = await self.pods.log(namespace, pod, container, since_seconds=since_seconds, previous=previous)
        except KubeError:
            return []  # a container still starting, or no previous instance: no lines rather than no page
        return parse_pod_log(text, labels)

    async def _lines(self, q: LogQuery, now_ns: int) -> list[LogLine]:
        sel = q.selector
        if sel.get("stream", "runtime") != "runtime":
            return []  # the pod log API holds runtime output only; build logs live in Loki
        namespace, pods = await self._list(sel)
        since_seconds = max(1, math.ceil((now_ns - q.since_ns) / NS))
        jobs = []
        for pod in pods:
            md, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
            restarted = {s.get("name") for s in status.get("containerStatuses") or [] if s.get("restartCount")}
            base = {"tenant": sel["tenant"], "project": sel["project"], "app": sel["app"], "pod": md["name"],
                    "stream": "runtime"}
            for name, pod_label in POD_LABELS.items():
                value = (md.get("labels") or {}).get(pod_label)
                if value and name not in base:
                    base[name] = value
            for c in spec.get("containers") or []:
                if "container" in sel and c["name"] != sel["container"]:
                    continue
                labels = {**base, "container": c["name"]}
                jobs.append(self._container(namespace, md["name"], c["name"], since_seconds, False, labels))
                if c["name"] in restarted:
                    jobs.append(self._container(namespace, md["name"], c["name"], since_seconds, True, labels))
        match = line_filter(contains=q.contains, regex=q.regex, level=q.level)
        until = q.until_ns if q.until_ns is not None else now_ns
        chunks = await asyncio.gather(*jobs)
        return in_order([line for chunk in chunks for line in chunk
                         if q.since_ns <= line.ts_ns < until and match(line.line)], "forward")

    async def read(self, q: LogQuery) -> LogPage:
        now = self.clock()
        lines = await self._lines(q, now)

        async def fetch(start_ns: int, end_ns: int, limit: int, direction: Direction) -> Sequence[LogLine]:
            chosen = [line for line in lines if start_ns <= line.ts_ns < end_ns]
            if direction == "backward":
                chosen.reverse()
            return chosen[:limit]

        return await read_page(q, fetch, now_ns=now, source=self.source)

    async def labels(self, selector: dict[str, str]) -> dict[str, list[str]]:
        _, pods = await self._list(selector)
        found: dict[str, set[str]] = {}
        for pod in pods:
            md = pod.get("metadata") or {}
            found.setdefault("pod", set()).add(md["name"])
            found.setdefault("stream", set()).add("runtime")
            for c in (pod.get("spec") or {}).get("containers") or []:
                found.setdefault("container", set()).add(c["name"])
            for name in ("deployment_id", "commit_sha"):
                value = (md.get("labels") or {}).get(POD_LABELS[name])
                if value:
                    found.setdefault(name, set()).add(value)
        return {k: sorted(v) for k, v in sorted(found.items()) if k not in selector}
