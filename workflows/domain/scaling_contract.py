"""Inputs and results of the scale workflow, of the app-metrics look, and of the deploy workflow's autoscaler
steps. Explicit types for every call, so fields can be added (with defaults) without breaking running
workflows."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import ConfigDict, Field

from workflows.domain.scaling import Autoscale, drop_titles
from workflows.domain.specs import Msg


class ScaleInput(Msg):
    """Set the app's scale: `replicas` (a fixed count, removing any autoscaler), `autoscale`, or neither (remove
    the autoscaler, keeping the count it reached)."""

    app_id: UUID
    replicas: int | None = Field(None, ge=1, le=20)
    autoscale: Autoscale | None = None


ScaleOutcome = Literal["scaled", "refused", "failed"]


class ScaleResult(Msg):
    outcome: ScaleOutcome
    release: str | None = None  # the serving release scaled
    replicas: int | None = None  # its count now (autoscaled: where it starts)
    autoscale: Autoscale | None = None
    reason: str | None = None  # refused or failed: why, and `fix`: what to do
    fix: str | None = None
    refs: list[str] = []


class StartReplicas(Msg):
    """The deploy workflow asks what count a new release of an autoscaled app starts at."""

    namespace: str
    app: str
    autoscale: Autoscale


class RetargetAutoscaler(Msg):
    """Point the app's autoscaler at `release` (right after the Service switched to it)."""

    namespace: str
    tenant: str
    project: str
    app: str
    release: str
    autoscale: Autoscale


# --- app metrics ----------------------------------------------------------------------------------------------

MetricsSource = Literal["metrics.k8s.io", "kubelet"]


class MetricsInput(Msg):
    namespace: str
    app: str
    window_seconds: int = Field(20, ge=0, le=60)
    samples: int = Field(3, ge=1, le=6)
    max_pods: int = Field(30, ge=1, le=100)


class PodUsage(Msg):
    """One pod, summed over its containers."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_titles)

    pod: str
    cpu_m: list[int] = Field([], description="Millicores: now, mean, max, request.")
    mem_mib: list[float] = Field([], description="Working set MiB: now, max, limit.")
    restarts: int = 0
    oom_kills: int = 0
    last_exit: str = Field("", description="reason (code)")


class AppMetrics(Msg):
    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_titles)

    source: str = Field("", description="metrics.k8s.io or kubelet")
    pods: list[PodUsage] = []
    notes: list[str] = []
