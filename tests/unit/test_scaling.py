"""Scaling's decisions and its autoscaler object, without a cluster:

- refusals: a single_node volume mounted read-write allows one replica (fixed or autoscaled), read-only or
  shared mounts do not limit it;
- the count a new release starts at and the one the reconciler holds (fixed, autoscaled, never scaled);
- the HorizontalPodAutoscaler rendered in the version the cluster serves, valid against the upstream schemas
  (v2beta2 against the oldest schemas the validator ships, 1.25; the testbed's 1.20 serves only v2beta2);
- the autoscaler's status as `get_app` shows it: a missing metrics API said plainly.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version
from pydantic import ValidationError

from workflows.domain.drift import object_drift
from workflows.domain.labels import LABEL_APP
from workflows.domain.scaling import (
    NO_METRICS,
    AppScale,
    Autoscale,
    autoscaler_status,
    desired_replicas,
    scale_refusal,
    scaled_config,
    start_replicas,
)
from workflows.domain.specs import AppConfig, ClusterCaps, Mount
from workflows.render.autoscaler import app_autoscaler

V2 = ClusterCaps(minor=30, hpa_api="autoscaling/v2")
V2BETA2 = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False, hpa_api="autoscaling/v2beta2")
AUTO = Autoscale(min=2, max=6, cpu_percent=60)


def _config(*mounts: Mount) -> AppConfig:
    return AppConfig(port=8080, mounts=list(mounts))


def _mount(access: str = "single_node", read_only: bool = False) -> Mount:
    return Mount(volume="data", claim="data-pvc", mount_path="/data", access=access,
                 read_only=read_only)


def test_a_single_writer_volume_refuses_more_than_one_replica_with_the_reason_and_the_fix() -> None:
    config = _config(_mount())
    refused = scale_refusal(config, 3, None)
    assert refused is not None
    reason, fix = refused
    assert "single_node volume 'data'" in reason and "one writer" in reason
    assert "access: shared" in fix
    assert scale_refusal(config, None, Autoscale(min=1, max=3)) is not None
    assert scale_refusal(config, 1, None) is None  # one replica is what it already runs
    assert scale_refusal(config, None, Autoscale(min=1, max=1)) is None


def test_shared_or_read_only_volumes_do_not_limit_replicas() -> None:
    assert scale_refusal(_config(_mount("shared")), 5, None) is None
    assert scale_refusal(_config(_mount(read_only=True)), 5, AUTO) is None
    assert scale_refusal(_config(), 20, None) is None


def test_autoscale_range_and_one_of_the_two_are_checked() -> None:
    with pytest.raises(ValidationError, match="min <= max"):
        Autoscale(min=5, max=2)
    with pytest.raises(ValidationError, match="either a fixed replica count or an autoscaler"):
        AppScale(replicas=2, autoscale=AUTO)
    with pytest.raises(ValidationError):
        AppScale()
    assert Autoscale(max=3).min == 1 and Autoscale(max=3).cpu_percent == 70


def test_a_new_release_starts_at_the_recorded_or_current_count() -> None:
    assert start_replicas(None, 5, 2) == 2  # never scaled: the release's own configuration
    assert start_replicas(AppScale(replicas=4), 1, 2) == 4  # fixed: what `scale` recorded
    auto = AppScale(autoscale=AUTO)
    assert start_replicas(auto, 5, 1) == 5  # autoscaled: what serves now, so a switch drops nothing
    assert start_replicas(auto, 9, 1) == 6 and start_replicas(auto, 1, 1) == 2  # inside the range
    assert start_replicas(auto, None, 1) == 2  # nothing serves: the floor


def test_the_reconciler_holds_the_fixed_count_and_leaves_the_autoscalers_choice() -> None:
    assert desired_replicas(AppScale(replicas=3), 1, 1) == 3  # someone scaled it by hand: back to 3
    assert desired_replicas(None, 4, 2) == 2
    auto = AppScale(autoscale=AUTO)
    assert desired_replicas(auto, 5, 1) == 5  # the autoscaler's: not fought
    assert desired_replicas(auto, 10, 1) == 6 and desired_replicas(auto, None, 1) == 2
    config = AppConfig(port=8080, replicas=1)
    assert scaled_config(config, 1) is config and scaled_config(config, 3).replicas == 3


def test_the_autoscaler_targets_the_release_in_the_served_version() -> None:
    hpa = app_autoscaler("dm-acme-shop-x", "acme", "shop", "web", "web-r3", AUTO, V2BETA2)
    assert hpa["apiVersion"] == "autoscaling/v2beta2" and hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"]["name"] == "web" and hpa["metadata"]["labels"][LABEL_APP] == "web"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-r3"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    kubernetes_validate.validate(hpa, all_versions()[0], strict=True)  # 1.25: the last serving v2beta2
    both = app_autoscaler("ns", "acme", "shop", "web", "web-r4", Autoscale(max=3, memory_percent=80), V2)
    assert both["apiVersion"] == "autoscaling/v2"
    assert [m["resource"]["name"] for m in both["spec"]["metrics"]] == ["cpu", "memory"]
    kubernetes_validate.validate(both, latest_version(), strict=True)


def test_a_switch_is_one_field_of_the_same_object() -> None:
    before = app_autoscaler("ns", "acme", "shop", "web", "web-r3", AUTO, V2BETA2)
    after = app_autoscaler("ns", "acme", "shop", "web", "web-r4", AUTO, V2BETA2)
    assert before["metadata"] == after["metadata"]
    why = object_drift(after, before)
    assert why is not None and "spec.scaleTargetRef.name is 'web-r3', want 'web-r4'" in why
    assert object_drift(after, after) is None


def _hpa(conditions: list[dict[str, str]], current: int = 2, desired: int = 0) -> dict[str, Any]:
    hpa = app_autoscaler("ns", "acme", "shop", "web", "web-r3", AUTO, V2BETA2)
    hpa["status"] = {"currentReplicas": current, "desiredReplicas": desired, "conditions": conditions}
    return hpa


# what kube-controller-manager 1.20 writes on a cluster without metrics-server
NO_METRICS_CONDITIONS = [
    {"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-12-02T04:10:00Z",
     "reason": "SucceededGetScale", "message": "the HPA controller was able to get the target's current scale"},
    {"type": "ScalingActive", "status": "False", "lastTransitionTime": "2026-12-02T04:10:15Z",
     "reason": "FailedGetResourceMetric",
     "message": "the HPA was unable to compute the replica count: unable to get metrics for resource cpu: unable to "
                "fetch metrics from resource metrics API: the server could not find the requested resource "
                "(get pods.metrics.k8s.io)"},
]


def test_status_says_plainly_that_the_cluster_has_no_metrics_api() -> None:
    status = autoscaler_status(AUTO, _hpa(NO_METRICS_CONDITIONS), metrics_served=False)
    assert status.target == "web-r3" and status.current_replicas == 2 and status.desired_replicas == 0
    assert status.conditions == [NO_METRICS]
    assert "no metrics API on this cluster" in NO_METRICS
    served = autoscaler_status(AUTO, _hpa(NO_METRICS_CONDITIONS), metrics_served=True)
    assert served.conditions[0].startswith("cannot read the pods' metrics yet")


def test_status_of_a_working_autoscaler_has_no_conditions_and_a_missing_one_says_so() -> None:
    fine = [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "ok"},
            {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "ok"},
            {"type": "ScalingLimited", "status": "True", "reason": "TooFewReplicas",
             "message": "the desired replica count is less than the minimum replica count"}]
    status = autoscaler_status(AUTO, _hpa(fine, current=2, desired=2), metrics_served=True)
    assert status.conditions == [] and status.desired_replicas == 2
    capped = [*fine[:2], {"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas",
                          "message": "the desired replica count is more than the maximum replica count"}]
    assert autoscaler_status(AUTO, _hpa(capped, 6, 6), True).conditions[0].startswith("held at max=6")
    gone = autoscaler_status(AUTO, None, metrics_served=True)
    assert gone.target is None and "missing" in gone.conditions[0]
