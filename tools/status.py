"""An app's status as observed, not as remembered: the reconciler's latest look at the cluster
(`app_observations`, written by the worker, which alone can read the cluster) turns a recorded `running` into
`degraded`, with the reason, when the serving release is not what traffic meets, or when nothing has looked
for too long (the reconciler is not running)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from tools.context import PlatformConfig
from tools.records import AppRecord, ObservationRecord
from workflows.domain.reconcile_contract import Observation


class ObservedStatus(BaseModel):
    """What the platform's reconciler saw in the cluster at its last pass over the app."""

    observed_at: datetime
    release: str | None = Field(description="The serving release the pass compared the cluster with.")
    desired_replicas: int
    ready_replicas: int = Field(description="Ready pods of the serving release.")
    pods_ready: bool = Field(description="The serving release ran all its desired replicas Ready.")
    service_points_at_serving: bool = Field(description="The app's Service selected the serving release and its "
                                                        "endpoints were that release's Ready pods.")
    drift: list[str] = Field(description="What differed from the recorded state at the last pass.")
    repaired: list[str] = Field(description="Objects the last pass re-applied (kind/namespace/name).")
    last_repair_at: datetime | None = Field(description="When the platform last re-applied something for this app.")
    last_repaired: list[str] = Field(description="Objects that repair re-applied.")
    error: str | None = Field(None, description="Why the last pass could not finish, if it could not.")


def observed_view(obs: ObservationRecord | None) -> ObservedStatus | None:
    if obs is None:
        return None
    return ObservedStatus(
        observed_at=obs.observed_at, release=obs.release, desired_replicas=obs.desired_replicas,
        ready_replicas=obs.ready_replicas, pods_ready=obs.serving_ready,
        service_points_at_serving=obs.service_points_at_serving, drift=obs.drift, repaired=obs.repaired,
        last_repair_at=obs.last_repair_at, last_repaired=obs.last_repaired, error=obs.error)


def observed_status(app: AppRecord, obs: ObservationRecord | None, config: PlatformConfig,
                    now: datetime | None = None, releasing: bool = False) -> tuple[str, str | None]:
    """(status, reason): the recorded status, except that a serving app is `degraded` when the latest
    observation made after its last release says traffic does not meet the serving release (or that the pass
    found drift), or when neither that release nor any pass is more recent than `reconcile_stale_seconds`.
    Without a reconciler (setting off) the recorded status stands. While a release of the app is in progress
    (`releasing`) the reconciler stands aside, so no pass is late then: only the staleness rule is off (a
    release recorded in progress whose workflow is gone does not stop the passes, nor what they report)."""
    if app.status != "running" or app.serving_deployment_id is None or not config.reconcile_enabled:
        return app.status, None
    now = now or datetime.now(UTC)
    # the last release's own end is an observation too: it saw the release Ready and switched the Service
    seen = app.updated_at
    if obs is not None and obs.observed_at >= app.updated_at:
        seen = obs.observed_at
        reason = Observation(
            app_id=obs.app_id, release=obs.release, desired_replicas=obs.desired_replicas,
            ready_replicas=obs.ready_replicas, serving_ready=obs.serving_ready,
            service_points_at_serving=obs.service_points_at_serving, drift=obs.drift, repaired=obs.repaired,
            error=obs.error).reason()
        if reason is not None:
            return "degraded", reason
    if not releasing and (now - seen).total_seconds() > config.reconcile_stale_seconds:
        return "degraded", (f"not observed since {seen.isoformat(timespec='seconds')}: the platform's reconciler "
                            "is not running or cannot reach the cluster (tell the operator)")
    return "running", None
