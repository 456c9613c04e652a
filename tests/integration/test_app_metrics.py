"""`app_metrics`' activity over real HTTP through the platform's Kubernetes adapter, against the fake
metrics-server (tests/fakes/fake_metrics_server.py): PodMetrics when metrics.k8s.io is served, the kubelet
Summary API through the node proxy when it is not (404), its backend is down (503) or listing is refused
(403); samples over the window
become now / mean / max; a node whose kubelet does not answer costs only its pods' numbers; the pod cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client
from temporalio.testing import ActivityEnvironment

from tests.fakes.fake_metrics_server import FakeMetricsServer, fake_metrics_server_running
from tests.support.metrics_samples import NAMESPACE, POD_A, POD_B, app_pod
from workflows.activities.pod_metrics import MetricsActivities
from workflows.adapters.kube import Kube
from workflows.domain.scaling_contract import AppMetrics, MetricsInput

MIB = 2**20


def _fake() -> FakeMetricsServer:
    return FakeMetricsServer(
        pods=[app_pod(POD_A, "node-1", restarts=2, last_reason="OOMKilled"), app_pod(POD_B, "node-2")],
        usage={POD_A: [(100_000_000, 200 * MIB), (300_000_000, 250 * MIB), (200_000_000, 240 * MIB)],
               POD_B: [(5_000_000, 30 * MIB)]})


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeMetricsServer, Kube]]:
    fake = _fake()
    async with fake_metrics_server_running(fake) as url:
        conf = client.Configuration(host=url)
        kube = Kube(client.ApiClient(configuration=conf))
        try:
            yield fake, kube
        finally:
            await kube.close()


async def _run(kube: Kube, **kw: int) -> AppMetrics:
    inp = MetricsInput(namespace=NAMESPACE, app="web", **({"window_seconds": 1, "samples": 3} | kw))
    result: AppMetrics = await ActivityEnvironment().run(MetricsActivities(kube).app_metrics, inp)
    return result


async def test_from_metrics_k8s_io_when_served(served: tuple[FakeMetricsServer, Kube]) -> None:
    fake, kube = served
    got = await _run(kube)
    assert got.source == "metrics.k8s.io"
    a, b = got.pods
    assert a.pod == POD_A and a.cpu_m == [200, 200, 300, 250] and a.mem_mib == [240.0, 250.0, 256.0]
    assert (a.restarts, a.oom_kills, a.last_exit) == (2, 1, "OOMKilled (137)")
    assert b.pod == POD_B and b.cpu_m == [5, 5, 5, 250] and b.oom_kills == 0
    assert not any("proxy" in r for r in fake.requests)


@pytest.mark.parametrize("down", ["not registered", "backend down"])
async def test_from_the_kubelets_when_metrics_are_not_served(served: tuple[FakeMetricsServer, Kube],
                                                             down: str) -> None:
    fake, kube = served
    fake.serve_metrics = down == "backend down"
    fake.metrics_backend_down = down == "backend down"
    got = await _run(kube)
    assert got.source == "kubelet"
    a, b = got.pods
    assert a.cpu_m == [200, 200, 300, 250] and a.mem_mib == [240.0, 250.0, 256.0]
    assert b.mem_mib == [30.0, 30.0, 256.0]
    assert {r for r in fake.requests if "proxy" in r} == {"/api/v1/nodes/node-1/proxy/stats/summary",
                                                          "/api/v1/nodes/node-2/proxy/stats/summary"}


async def test_pod_metrics_refused_falls_back_to_the_kubelets_and_says_so(
    served: tuple[FakeMetricsServer, Kube],
) -> None:
    fake, kube = served
    fake.forbid_pod_metrics = True
    got = await _run(kube, window_seconds=0, samples=1)
    assert got.source == "kubelet" and got.pods[0].cpu_m
    assert got.notes[0].startswith("metrics.k8s.io unreadable") and "forbidden" in got.notes[0]


async def test_one_node_down_costs_only_its_pods(served: tuple[FakeMetricsServer, Kube]) -> None:
    fake, kube = served
    fake.serve_metrics = False
    fake.kubelet_down = {"node-2"}
    got = await _run(kube, window_seconds=0, samples=1)
    a, b = got.pods
    assert a.cpu_m and b.cpu_m == [] and b.restarts == 0
    assert any(n.startswith("node node-2: kubelet stats unreadable") for n in got.notes)
    assert any(n.startswith(f"{POD_B}: no usage reported") for n in got.notes)


async def test_the_pod_cap_says_how_many_were_left_out(served: tuple[FakeMetricsServer, Kube]) -> None:
    fake, kube = served
    got = await _run(kube, window_seconds=0, samples=1, max_pods=1)
    assert [p.pod for p in got.pods] == [POD_A]
    assert got.notes[0] == "1 more pods not shown (at most 1)"
    fake.pods = []
    assert (await _run(kube, window_seconds=0, samples=1)).notes == ["the app has no pods"]
