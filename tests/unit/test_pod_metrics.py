"""Pods' CPU and memory read from both sources' real shapes (tests/support/metrics_samples.py): PodMetrics
quantities ("2413152n", "23716Ki") and Summary integers, per-container sums, the pod-level fallback of a runtime
without container stats, other namespaces ignored; restarts and OOM kills from the pod's container statuses;
samples summed into now / mean / max with the request and limit beside them."""

from __future__ import annotations

from tests.support.metrics_samples import (
    NAMESPACE,
    POD_A,
    POD_B,
    app_pod,
    pod_metrics,
    pod_metrics_list,
    summary,
    summary_pod,
)
from workflows.domain.pod_metrics import Usage, parse_pod_metrics, parse_summary, pod_facts, summarize


def test_pod_metrics_quantities_become_nanocores_and_bytes() -> None:
    answer = pod_metrics_list(pod_metrics(POD_A, "2413152n", "23716Ki"), pod_metrics(POD_B, "250m", "128Mi"))
    got = parse_pod_metrics(answer["items"])
    assert got[POD_A] == Usage(cpu_nanocores=2413152, memory_bytes=23716 * 1024)
    assert got[POD_B] == Usage(cpu_nanocores=250_000_000, memory_bytes=128 * 2**20)


def test_pod_metrics_sum_the_containers_and_tolerate_a_bad_quantity() -> None:
    item = pod_metrics(POD_A, "1000000n", "1Mi")
    item["containers"].append({"name": "sidecar", "usage": {"cpu": "2m", "memory": "not-a-quantity"}})
    assert parse_pod_metrics([item])[POD_A] == Usage(cpu_nanocores=3_000_000, memory_bytes=2**20)


def test_summary_reads_containers_and_falls_back_to_the_pod_level() -> None:
    node = summary("node-1", summary_pod(POD_A, 2413152, 24285184),
                   summary_pod(POD_B, 5_000_000, 30_000_000, per_container=False),
                   summary_pod("other-7f9c-abcde", 9, 9, namespace="dm-other"))
    got = parse_summary(node, NAMESPACE)
    assert set(got) == {POD_A, POD_B}  # another project's pod on the node is not ours to show
    assert got[POD_A] == Usage(cpu_nanocores=2413152, memory_bytes=24285184)
    assert got[POD_B] == Usage(cpu_nanocores=5_150_000, memory_bytes=31_048_576)  # the pod's own totals


def test_summary_without_numbers_reports_none() -> None:
    entry = summary_pod(POD_A, 1, 1)
    del entry["containers"][0]["cpu"], entry["cpu"]
    assert parse_summary(summary("node-1", entry), NAMESPACE)[POD_A].cpu_nanocores is None


def test_restarts_and_oom_kills_come_from_the_last_termination() -> None:
    oom = pod_facts(app_pod(POD_A, "node-1", restarts=3, last_reason="OOMKilled"))
    assert (oom.pod, oom.node, oom.running, oom.restarts, oom.oom_kills) == (POD_A, "node-1", True, 3, 1)
    assert oom.last_exit == "OOMKilled (137)"
    assert oom.cpu_request_m == 250 and oom.mem_limit_bytes == 256 * 2**20
    crashed = pod_facts(app_pod(POD_B, "node-2", restarts=1, last_reason="Error"))
    assert crashed.oom_kills == 0 and crashed.last_exit == "Error (1)"
    assert pod_facts(app_pod(POD_B, "node-2")).last_exit == ""


def test_samples_become_now_mean_max_beside_the_request_and_limit() -> None:
    facts = pod_facts(app_pod(POD_A, "node-1"))
    samples = [Usage(100_000_000, 100 * 2**20), Usage(300_000_000, 120 * 2**20), Usage(200_000_000, 110 * 2**20)]
    usage = summarize(facts, samples)
    assert usage.cpu_m == [200, 200, 300, 250]  # now, mean, max, request
    assert usage.mem_mib == [110.0, 120.0, 256.0]  # now, max, limit
    assert summarize(facts, []).cpu_m == [] and summarize(facts, []).mem_mib == []
