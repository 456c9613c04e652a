"""How many replicas an app runs, as the platform decides it: a fixed count set by `scale`, or an autoscaler's
range and targets; and the pure decisions around it (refusals, the count a new release starts at, what the
reconciler wants, how an autoscaler's status reads to an agent). See docs/decisions/0015-autoscaling.md.

No I/O: the scale activity, the deploy workflow's activities, the reconciler and the tools all decide here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from workflows.domain.specs import AppConfig, Msg, Spec

MAX_REPLICAS = 20  # AppConfig.replicas' bound: the same ceiling for a fixed count and an autoscaler


def drop_titles(schema: dict[str, Any]) -> None:
    """JSON-schema hook: no generated `title` per property (they repeat the names) in what agents read; the
    tool list has a token budget (issue 19)."""
    schema.pop("title", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)


class Autoscale(Spec):
    """Replicas in [min, max] aiming at these % of the pods' requests."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=drop_titles)

    # the docstring is the schema's description the agent reads: kept short (the tool list's token budget).
    # The targets are averaged over the serving release's pods.
    min: int = Field(1, ge=1, le=MAX_REPLICAS)
    max: int = Field(ge=1, le=MAX_REPLICAS)
    cpu_percent: int = Field(70, ge=10, le=500)
    memory_percent: int | None = Field(None, ge=10, le=100)

    @model_validator(mode="after")
    def _range(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}): set min <= max")
        return self

    def clamp(self, replicas: int) -> int:
        return max(self.min, min(self.max, replicas))


class AppScale(Msg):
    """What `scale` recorded for an app (`apps.scale`): exactly one of a fixed count or an autoscaler. An app
    never scaled has none (None), and each release runs the count of its own configuration."""

    replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS)
    autoscale: Autoscale | None = None

    @model_validator(mode="after")
    def _one(self) -> AppScale:
        if (self.replicas is None) == (self.autoscale is None):
            raise ValueError("an app's scale is either a fixed replica count or an autoscaler")
        return self


def single_writer(config: AppConfig) -> str | None:
    """The volume of the app that allows one writer (a single_node volume mounted read-write), if any."""
    return next((m.volume for m in config.mounts if m.access == "single_node" and not m.read_only), None)


def scale_refusal(config: AppConfig, replicas: int | None, autoscale: Autoscale | None) -> tuple[str, str] | None:
    """(reason, fix) when the app cannot run the count asked for; None when it can. A single_node volume is
    ReadWriteOnce: a second pod on another node could never mount it, and two on one node would both write."""
    volume = single_writer(config)
    wants_many = (replicas or 1) > 1 or (autoscale is not None and autoscale.max > 1)
    if volume is not None and wants_many:
        return (f"the app mounts the single_node volume {volume!r}, which allows one writer, so it runs one replica",
                "move the data to a volume created with access: shared (attach_volume), or keep replicas=1")
    return None


def start_replicas(scale: AppScale | None, serving_replicas: int | None, config_replicas: int) -> int:
    """The count a new release (or a rollback's target) starts at. Fixed: the recorded count. Autoscaled: what
    the serving release runs now, kept inside the autoscaler's range, so a switch never drops replicas the
    autoscaler had added; nothing serving yet: the range's floor. Never scaled: the release's own count."""
    if scale is None:
        return config_replicas
    if scale.replicas is not None:
        return scale.replicas
    assert scale.autoscale is not None
    return scale.autoscale.clamp(serving_replicas if serving_replicas is not None else scale.autoscale.min)


def desired_replicas(scale: AppScale | None, live_replicas: int | None, config_replicas: int) -> int:
    """The serving release's count the reconciler holds to. Autoscaled: the live count (the autoscaler's to
    change) kept inside the range; else as a new release would start."""
    if scale is not None and scale.autoscale is not None:
        return scale.autoscale.clamp(live_replicas if live_replicas is not None else scale.autoscale.min)
    return start_replicas(scale, live_replicas, config_replicas)


def scaled_config(config: AppConfig, replicas: int) -> AppConfig:
    """The release's configuration at `replicas` (renders the Deployment and its PDB at that count)."""
    return config if config.replicas == replicas else config.model_copy(update={"replicas": replicas})


# --- the autoscaler's status, read back from the cluster ------------------------------------------------------

NO_METRICS = ("no metrics API on this cluster (metrics.k8s.io is not served, e.g. no metrics-server): the "
              "autoscaler cannot measure CPU and holds the current count")
_MAX_CONDITION = 160


class AutoscalerStatus(Msg):
    """As last observed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=drop_titles)

    min: int
    max: int
    cpu_percent: int
    memory_percent: int | None = None
    target: str | None = None  # the release (Deployment) it scales: the serving one
    current_replicas: int | None = None
    desired_replicas: int | None = None
    conditions: list[str] = Field(default_factory=list, description="Problems only.")


def autoscaler_status(autoscale: Autoscale, live: Mapping[str, Any] | None, metrics_served: bool) -> AutoscalerStatus:
    """`live` (the HorizontalPodAutoscaler object, v2 or v2beta2: the same status shape) summarised. Only
    conditions that are not fine are kept, each as one short sentence; a missing metrics API is said plainly
    rather than as the controller's FailedGetResourceMetric chain."""
    out = AutoscalerStatus(min=autoscale.min, max=autoscale.max, cpu_percent=autoscale.cpu_percent,
                           memory_percent=autoscale.memory_percent)
    if live is None:
        out.conditions = ["the autoscaler object is missing (the reconciler re-creates it)"]
        return out
    out.target = ((live.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
    status = live.get("status") or {}
    out.current_replicas = status.get("currentReplicas")
    out.desired_replicas = status.get("desiredReplicas")
    for c in status.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") != "ScalingLimited":
            continue
        reason, message = str(c.get("reason") or ""), str(c.get("message") or "")
        if c.get("type") == "ScalingLimited":
            if c.get("status") == "True" and reason == "TooManyReplicas":  # below `min` is the idle normal
                out.conditions.append(f"held at max={autoscale.max}: {message}"[:_MAX_CONDITION])
            continue
        if reason.startswith("FailedGet") and ("metrics" in message or "metrics" in reason.lower()):
            out.conditions.append(NO_METRICS if not metrics_served else
                                  f"cannot read the pods' metrics yet: {message}"[:_MAX_CONDITION])
        else:
            out.conditions.append(f"{c.get('type')} {reason}: {message}"[:_MAX_CONDITION])
    if not status.get("conditions") and not metrics_served:
        out.conditions.append(NO_METRICS)
    return out
