"""The worker's own Prometheus metrics, counted where the work happens (in the activities, which run once per
attempt and never replay; the workflow outcomes are counted by `mcp_server.telemetry.workflow_metrics`).

Every label takes values from a closed set the code defines (object kinds, outcomes, builders), never an app,
tenant or project name: a metric's series must not grow with the platform's users. Which app a repair touched
is in the audit row and the span, not here.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILE_PASSES = Counter(
    "deploy_mcp_reconcile_passes", "Reconcile passes over one app, by what the pass found.", ["state"])
RECONCILE_REPAIRS = Counter(
    "deploy_mcp_reconcile_repairs", "Kubernetes objects a reconcile pass re-applied because they drifted, by kind.",
    ["kind"])
BUILD_SECONDS = Histogram(
    "deploy_mcp_build_duration_seconds", "Wall time of one image build (checkout, build, push), by builder and "
    "outcome.", ["builder", "outcome"],
    buckets=(5, 15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600))

KINDS = frozenset({"Deployment", "Service", "Ingress", "PodDisruptionBudget", "Secret", "PersistentVolumeClaim",
                   "HorizontalPodAutoscaler", "Certificate", "StatefulSet", "NetworkPolicy", "ConfigMap"})
"""The kinds a repair is counted under; anything else (a kind added later) is `other`, so the label stays bounded."""


def repaired_kind(ref: str) -> str:
    """`Deployment/ns/name` (how the reconciler names what it applied) -> `Deployment`; a kind outside `KINDS`
    -> `other`."""
    kind = ref.split("/", 1)[0]
    return kind if kind in KINDS else "other"
