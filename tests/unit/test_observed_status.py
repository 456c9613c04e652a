"""An app's status as the tools report it (`tools.status.observed_status`): observed, not remembered.

- a serving app whose latest observation (newer than its last release) is healthy is `running`;
- one whose observation shows drift, pods not Ready, the Service elsewhere or a failed pass is `degraded`,
  with that reason;
- an observation older than the app's last release does not count (that release saw it Ready);
- nothing newer than the stale bound (neither a release nor a pass) is `degraded`: "not observed since";
- without the reconciler, or for an app not serving, the recorded status stands; while a release is in
  progress nothing counts as stale (the reconciler stands aside), but a fresh observation still does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from tools.context import PlatformConfig
from tools.records import AppRecord, ObservationRecord
from tools.status import observed_status

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
CONFIG = PlatformConfig(apps_domain="apps.example", reconcile_enabled=True, reconcile_stale_seconds=90)
APP = AppRecord(id=uuid4(), tenant="acme", project="shop", name="web", namespace="dm-acme-shop-1", hostname="h",
                spec={}, status="running", serving_deployment_id=uuid4(), created_at=NOW - timedelta(hours=1),
                updated_at=NOW - timedelta(minutes=10))


def obs(ago: float, **fields: Any) -> ObservationRecord:
    values: dict[str, Any] = dict(
        app_id=APP.id, observed_at=NOW - timedelta(seconds=ago), release="web-r2", desired_replicas=1,
        ready_replicas=1, serving_ready=True, service_points_at_serving=True, drift=[], repaired=[], error=None,
        last_repair_at=None, last_repaired=[])
    return ObservationRecord(**(values | fields))


def test_a_fresh_healthy_observation_is_running() -> None:
    assert observed_status(APP, obs(10), CONFIG, NOW) == ("running", None)


def test_what_the_pass_found_makes_it_degraded() -> None:
    status, reason = observed_status(APP, obs(5, drift=["Deployment/dm-acme-shop-1/web-r2 is missing"],
                                               repaired=["Deployment/dm-acme-shop-1/web-r2"], serving_ready=False,
                                               ready_replicas=0), CONFIG, NOW)
    assert status == "degraded" and reason == "drift found (re-applied): Deployment/dm-acme-shop-1/web-r2 is missing"
    assert observed_status(APP, obs(5, serving_ready=False, ready_replicas=0), CONFIG, NOW) == (
        "degraded", "web-r2: 0/1 replicas Ready")
    status, reason = observed_status(APP, obs(5, service_points_at_serving=False), CONFIG, NOW)
    assert status == "degraded" and "Service does not send traffic to web-r2" in str(reason)
    status, reason = observed_status(APP, obs(5, error="K8sForbidden: read Namespace"), CONFIG, NOW)
    assert status == "degraded" and "K8sForbidden" in str(reason)


def test_an_observation_older_than_the_last_release_does_not_count() -> None:
    fresh_release = APP.model_copy(update={"updated_at": NOW - timedelta(seconds=20)})
    assert observed_status(fresh_release, obs(60, serving_ready=False), CONFIG, NOW) == ("running", None)
    assert observed_status(fresh_release, None, CONFIG, NOW) == ("running", None)


def test_nothing_seen_for_too_long_is_degraded() -> None:
    status, reason = observed_status(APP, obs(200), CONFIG, NOW)
    since = (NOW - timedelta(seconds=200)).isoformat(timespec="seconds")
    assert status == "degraded" and str(reason).startswith(f"not observed since {since}")
    status, reason = observed_status(APP, None, CONFIG, NOW)  # restored database, nothing observed since
    assert status == "degraded" and "not observed since" in str(reason)


def test_without_the_reconciler_or_a_serving_release_the_record_stands() -> None:
    off = PlatformConfig(apps_domain="apps.example")
    assert observed_status(APP, obs(10_000, serving_ready=False), off, NOW) == ("running", None)
    failed = APP.model_copy(update={"status": "failed", "serving_deployment_id": None})
    assert observed_status(failed, obs(5, release=None), CONFIG, NOW) == ("failed", None)


def test_while_a_release_is_in_progress_the_record_stands() -> None:
    """The reconciler stands aside during a release (a build may take minutes): no "not observed since"."""
    assert observed_status(APP, obs(600), CONFIG, NOW, releasing=True) == ("running", None)
    assert observed_status(APP, obs(600), CONFIG, NOW)[0] == "degraded"
    # a row left in progress by a workflow that is gone: the passes go on, and what they find is reported
    assert observed_status(APP, obs(5, serving_ready=False), CONFIG, NOW, releasing=True)[0] == "degraded"
