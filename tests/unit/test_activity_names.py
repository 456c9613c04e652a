"""The activities' registered names are the wire contract with workflows already running (their histories
name each activity they scheduled): every name stays as it was, each definition calls its activities by
method reference to a registered method whose annotations give the types results decode into, and every
volume operation has its activity."""

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
        "ensure_namespace", "apply_release", "wait_ready", "switch_service", "switch_if_ready", "scale_release",
        "retire_releases",
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
    assert deploy["switch_if_ready"].ret_type == Switched | None
    assert registered(BuildActivities)["build_start"].ret_type is BuildStarted
    assert registered(VolumeActivities)["volume_create"].ret_type is VolumeResult


def test_every_volume_operation_has_its_activity_under_its_old_name() -> None:
    ops = set(get_args(VolumeOp.model_fields["op"].annotation))
    assert set(OPERATIONS) == ops
    for op, method in OPERATIONS.items():
        defn = activity._Definition.from_callable(method)
        assert defn is not None and defn.name == f"volume_{op}"


def test_results_round_trip_through_the_data_converter_as_the_annotated_types() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from workflows.domain.deploy_contract import RetiredRelease, Switched

    deploy = registered(DeployActivities)
    converter = pydantic_data_converter.payload_converter
    for name, value in (("switch_service", Switched(previous_release="web-r1", refs=["Service/ns/web"])),
                        ("retire_releases", [RetiredRelease(name="web-r1", replicas=2)]),
                        ("release_ready", True), ("wait_ready", None),
                        ("switch_if_ready", Switched(previous_release=None, refs=[]))):
        [back] = converter.from_payloads(converter.to_payloads([value]), [deploy[name].ret_type])
        assert back == value and type(back) is type(value), name


def test_definitions_name_no_activity_by_string() -> None:
    import workflows.build
    import workflows.delete
    import workflows.deploy
    import workflows.diagnose
    import workflows.volume

    for module in (workflows.build, workflows.delete, workflows.deploy, workflows.diagnose, workflows.volume):
        source = inspect.getsource(module)
        assert "execute_activity(" not in source and "start_activity(" not in source, module.__name__
