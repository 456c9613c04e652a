"""KubeLogStore on canned pod-log text (the live cluster tests belong to the testbed suite):

- `timestamps=true` lines parsed to nanoseconds, trimmed RFC3339Nano fractions included, a line without a
  stamp kept with the previous line's time, carriage returns and U+2028 inside a line kept in it;
- pods listed in the project's namespace by the platform's pod labels (deployment-id included), the
  previous container's log read when it restarted, a container that cannot serve logs skipped;
- two pods merged and paged forward and backward with the same cursor contract as Loki, many lines sharing one
  timestamp across pods, with no line lost or repeated; filters and the pod selector applied;
- labels from the pods; a cluster that cannot list pods is LogStoreUnavailable.
"""

from __future__ import annotations

from typing import Any

import pytest

from workflows.adapters.kube import KubeError
from workflows.adapters.kube_logs import KubeLogStore, parse_pod_log
from workflows.domain.k8s_errors import classify_status
from workflows.domain.log_paging import Direction, LogLine, LogQuery, LogStoreUnavailable
from workflows.domain.names import namespace_name
from workflows.domain.timestamps import NS, format_rfc3339_ns

T0 = 1_714_567_890 * NS  # 2024-05-01T12:51:30Z
NOW = T0 + 3600 * NS
DEPLOY = "0b5cf4c6-9d7e-4c53-9a55-2f4b3c1d2e10"


def stamp(offset_ns: int) -> str:
    return format_rfc3339_ns(T0 + offset_ns).replace("000Z", "Z")  # the kubelet trims trailing zeros


def canned(pod: str, container: str, previous: bool) -> str:
    if pod == "web-r1-a":
        if previous:
            return f"{stamp(0)} booting (previous)\n{stamp(1)} panic: out of memory\n"
        rows = [f"{stamp(1_000)} same ts {i} from a" for i in range(60)]
        rows += [f"{stamp(2_000 + i)} level=info tick {i}" for i in range(40)]
        rows += [f"{stamp(5_000)} level=error failed\rwith CR and \u2028 inside", "  continuation without stamp"]
        return "\n".join(rows) + "\n"
    rows = [f"{stamp(1_000)} same ts {i} from b" for i in range(45)]
    rows += [f"{stamp(3_000 + i)} GET /health 200" for i in range(25)]
    return "\n".join(rows) + "\n"


class FakePodLogSource:
    """Two pods of web (one restarted), one container each; records what it was asked."""

    def __init__(self, *, fail_list: bool = False) -> None:
        self.fail_list = fail_list
        self.listed: list[tuple[str, str]] = []
        self.reads: list[tuple[str, str, int, bool]] = []

    async def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.listed.append((namespace, label_selector))
        if self.fail_list:
            raise KubeError(classify_status(None, "connection refused"), "list Pod")

        def pod(name: str, restarts: int) -> dict[str, Any]:
            return {"metadata": {"name": name, "labels": {"deploy-mcp/deployment-id": DEPLOY,
                                                          "deploy-mcp/commit-sha": "abc123"}},
                    "spec": {"containers": [{"name": "app"}]},
                    "status": {"containerStatuses": [{"name": "app", "restartCount": restarts}]}}

        return [pod("web-r1-a", 1), pod("web-r1-b", 0)]

    async def log(self, namespace: str, pod: str, container: str, *, since_seconds: int, previous: bool) -> str:
        self.reads.append((pod, container, since_seconds, previous))
        return canned(pod, container, previous)


class FakeBrokenLogSource(FakePodLogSource):
    async def log(self, namespace: str, pod: str, container: str, *, since_seconds: int, previous: bool) -> str:
        if pod == "web-r1-b":
            raise KubeError(classify_status(400, "container is waiting to start"), "logs")
        return await super().log(namespace, pod, container, since_seconds=since_seconds, previous=previous)


SELECTOR = {"tenant": "acme", "project": "shop", "app": "web", "stream": "runtime"}


def test_pod_log_lines_are_parsed_to_nanoseconds() -> None:
    text = (f"{stamp(0)} first\n2024-05-01T12:51:30.1Z second\n2024-05-01T12:51:30Z third has\rCR\n"
            "no stamp here\n2024-05-01T14:51:31+02:00 offset\n2024-05-01T12:51:32.000000001Z\n")
    lines = parse_pod_log(text, {"pod": "p"})
    assert [(x.ts_ns - T0, x.line) for x in lines] == [
        (0, "first"), (100_000_000, "second"), (0, "third has\rCR"), (0, "no stamp here"),
        (NS, "offset"), (2 * NS + 1, "")]
    assert parse_pod_log("", {}) == []


async def page_through(store: KubeLogStore, q: LogQuery) -> list[LogLine]:
    got: list[LogLine] = []
    while True:
        page = await store.read(q)
        assert page.source == "kubernetes" and len(page.lines) <= q.limit
        got.extend(page.lines)
        if page.next_cursor is None:
            return got
        q = q.model_copy(update={"cursor": page.next_cursor})


@pytest.mark.parametrize("direction", ["forward", "backward"])
async def test_pods_are_merged_and_paged_exactly(direction: Direction) -> None:
    source = FakePodLogSource()
    store = KubeLogStore(source, clock=lambda: NOW)
    q = LogQuery(selector=SELECTOR, since_ns=T0 - NS, direction=direction, limit=7)
    got = await page_through(store, q)
    assert len(got) == 2 + 60 + 40 + 2 + 45 + 25
    assert len({(x.ts_ns, x.labels["pod"], x.line) for x in got}) == len(got)
    stamps = [x.ts_ns for x in got]
    assert stamps == sorted(stamps, reverse=direction == "backward")
    burst = [x for x in got if x.ts_ns == T0 + 1_000]
    assert len(burst) == 105 and {x.labels["pod"] for x in burst} == {"web-r1-a", "web-r1-b"}
    assert got[0 if direction == "forward" else -1].line == "booting (previous)"
    first = got[0]
    assert first.labels["deployment_id"] == DEPLOY and first.labels["commit_sha"] == "abc123"
    assert first.labels["stream"] == "runtime" and first.labels["container"] == "app"
    ns, selector = source.listed[0]
    assert ns == namespace_name("acme", "shop")
    assert selector == "deploy-mcp/tenant=acme,deploy-mcp/project=shop,deploy-mcp/app=web"
    assert ("web-r1-a", "app", 3601, True) in source.reads and ("web-r1-b", "app", 3601, True) not in source.reads


async def test_filters_and_selectors_apply() -> None:
    source = FakePodLogSource()
    store = KubeLogStore(source, clock=lambda: NOW)
    base = LogQuery(selector=SELECTOR, since_ns=T0 - NS, limit=500)
    errors = (await store.read(base.model_copy(update={"level": "error"}))).lines
    assert [x.line for x in errors] == ["level=error failed\rwith CR and \u2028 inside", "panic: out of memory"]
    health = (await store.read(base.model_copy(update={"contains": "GET /health", "regex": r"200$"}))).lines
    assert len(health) == 25
    only_b = await store.read(base.model_copy(update={"selector": {**SELECTOR, "pod": "web-r1-b"}}))
    assert {x.labels["pod"] for x in only_b.lines} == {"web-r1-b"} and len(only_b.lines) == 70
    by_release = {**SELECTOR, "deployment_id": DEPLOY}
    await store.read(base.model_copy(update={"selector": by_release}))
    assert source.listed[-1][1].endswith(f",deploy-mcp/deployment-id={DEPLOY}")
    window = await store.read(base.model_copy(update={"since_ns": T0 + 2_000, "until_ns": T0 + 2_010}))
    assert len(window.lines) == 10
    build = await store.read(base.model_copy(update={"selector": {**SELECTOR, "stream": "build"}}))
    assert build.lines == [] and build.next_cursor is None
    calls = len(source.listed)
    odd = await store.read(base.model_copy(update={"selector": {**SELECTOR, "deployment_id": "a,b=c"}}))
    assert odd.lines == [] and len(source.listed) == calls  # never pasted into a label selector


async def test_labels_unavailable_and_skipped_containers() -> None:
    store = KubeLogStore(FakePodLogSource(), clock=lambda: NOW)
    assert await store.labels({"tenant": "acme", "project": "shop", "app": "web"}) == {
        "commit_sha": ["abc123"], "container": ["app"], "deployment_id": [DEPLOY], "pod": ["web-r1-a", "web-r1-b"],
        "stream": ["runtime"]}
    down = KubeLogStore(FakePodLogSource(fail_list=True), clock=lambda: NOW)
    with pytest.raises(LogStoreUnavailable, match="could not list the app's pods"):
        await down.read(LogQuery(selector=SELECTOR, since_ns=0))
    broken = KubeLogStore(FakeBrokenLogSource(), clock=lambda: NOW)
    page = await broken.read(LogQuery(selector=SELECTOR, since_ns=T0 - NS, limit=1000))
    assert {x.labels["pod"] for x in page.lines} == {"web-r1-a"}
