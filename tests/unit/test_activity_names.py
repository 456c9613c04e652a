"""The activities' registered names are the wire contract with workflows already running (their histories
name each activity they scheduled): every name stays as it was, each definition calls its activities by
method reference to a registered method, and every volume operation has its activity."""

from __future__ import annotations

import inspect
from typing import Any, get_args

from temporalio import activity

from workflows.activities.build import BuildActivities
from workflows.activities.deploy import DeployActivities
from workflows.activities.harbor import HarborActivities
from workflows.activities.volume import VolumeActivities
from workflows.domain.volume_contract import VolumeOp
from workflows.volume import OPERATIONS

NAMES = {
    DeployActivities: {
        "wait_workflows_closed", "run_build", "set_image", "release_ready", "prune_releases", "set_phase",
        "ensure_namespace", "apply_release", "wait_ready", "switch_service", "scale_release", "retire_releases",
        "record_outcome", "diagnose_release", "delete_app_objects", "mark_app_deleted"},
    BuildActivities: {"build_start", "build_image", "build_finish"},
    HarborActivities: {"ensure_pull_secret"},
    VolumeActivities: {"volume_create", "volume_restore", "volume_resize", "volume_snapshot", "volume_backup",
                       "volume_policy", "volume_delete", "volume_record"},
}


def registered(cls: type) -> dict[str, Any]:
    """name -> definition of every `@activity.defn` method of `cls`."""
    found = {}
    for _, fn in inspect.getmembers(cls, inspect.isfunction):
        defn = activity._Definition.from_callable(fn)
        if defn is not None:
            assert defn.name is not None
            found[defn.name] = defn
    return found


def test_registered_names_are_unchanged() -> None:
    for cls, names in NAMES.items():
        assert set(registered(cls)) == names, cls.__name__


def test_result_types_come_from_the_method_annotations() -> None:
    """What `execute_activity_method` decodes a result into (modules use `from __future__ import annotations`)."""
    from workflows.domain.build_contract import BuildOutput, BuildStarted
    from workflows.domain.deploy_contract import RetiredRelease, Switched
    from workflows.domain.volume_contract import VolumeResult

    deploy = registered(DeployActivities)
    assert deploy["switch_service"].ret_type is Switched
    assert deploy["retire_releases"].ret_type == list[RetiredRelease]
    assert deploy["run_build"].ret_type is BuildOutput
    assert deploy["release_ready"].ret_type is bool
    assert registered(BuildActivities)["build_start"].ret_type is BuildStarted
    assert registered(VolumeActivities)["volume_create"].ret_type is VolumeResult


def test_every_volume_operation_has_its_activity_under_its_old_name() -> None:
    ops = set(get_args(VolumeOp.model_fields["op"].annotation))
    assert set(OPERATIONS) == ops
    for op, method in OPERATIONS.items():
        defn = activity._Definition.from_callable(method)
        assert defn is not None and defn.name == f"volume_{op}"
