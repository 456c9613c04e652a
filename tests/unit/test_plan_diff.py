"""The diff a plan shows: rendered fields against the live object, Secret values never shown."""

from __future__ import annotations

import base64
import json
from typing import Any

from workflows.domain.plan_diff import MAX_PATHS, REDACTED, changed_paths, redact_object


def _b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def deployment(image: str = "r/app@sha256:1", replicas: int = 2, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-r2", "namespace": "t-p",
                                                                        "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image, "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                 "ports": [{"containerPort": 8080}]}]}}}}


def test_nothing_live_is_a_create() -> None:
    assert changed_paths(deployment(), None) == ("create", [])


def test_server_added_fields_are_no_change() -> None:
    live = deployment()
    live["metadata"] |= {"uid": "u", "resourceVersion": "9", "managedFields": [{"manager": "deploy-mcp"}]}
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"readyReplicas": 2}
    assert changed_paths(deployment(), live) == ("unchanged", [])


def test_nested_changes_are_named_by_path_and_list_entries_by_name() -> None:
    live = deployment(env={"A": "1", "B": "2"})
    action, paths = changed_paths(deployment(image="r/app@sha256:2", replicas=3, env={"A": "1", "B": "3", "C": "4"}),
                                  live)
    assert action == "update"
    assert paths == ["spec.replicas", "spec.template.spec.containers[name=app].image",
                     "spec.template.spec.containers[name=app].env[name=B].value",
                     "spec.template.spec.containers[name=app].env[name=C]"]


def test_a_removed_named_entry_is_a_change() -> None:
    _, paths = changed_paths(deployment(env={"A": "1"}), deployment(env={"A": "1", "GONE": "x"}))
    assert paths == ["spec.template.spec.containers[name=app].env[name=GONE]"]


def test_a_label_added_to_live_metadata_map() -> None:
    desired = deployment()
    desired["metadata"]["labels"]["tier"] = "web"
    assert changed_paths(desired, deployment()) == ("update", ["metadata.labels.tier"])


def secret(values: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-r2-env", "namespace": "t-p"},
            "type": "Opaque", "data": {k: _b64(v) for k, v in values.items()}}


def test_a_secret_is_shown_with_keys_and_no_values() -> None:
    shown = redact_object(secret({"PASSWORD": "hunter2-very-secret", "TOKEN": "tok-123"}))
    assert shown["data"] == {"PASSWORD": REDACTED, "TOKEN": REDACTED}
    text = json.dumps(shown)
    assert "hunter2" not in text and _b64("hunter2-very-secret") not in text and _b64("tok-123") not in text


def test_redaction_leaves_the_rendered_object_alone_and_other_kinds_as_they_are() -> None:
    s = secret({"K": "v"})
    redact_object(s)
    assert s["data"] == {"K": _b64("v")}
    d = deployment()
    assert redact_object(d) == d


def test_a_changed_secret_value_names_its_key_only() -> None:
    action, paths = changed_paths(secret({"PASSWORD": "new-secret-value", "SAME": "x"}),
                                  secret({"PASSWORD": "old-secret-value", "SAME": "x"}))
    assert (action, paths) == ("update", ["data.PASSWORD"])
    assert all("secret-value" not in p and _b64("new-secret-value") not in p for p in paths)


def test_a_long_list_of_changes_is_cut_with_a_count() -> None:
    desired = deployment()
    desired["metadata"]["labels"] = {f"l{i}": "x" for i in range(MAX_PATHS + 5)}
    action, paths = changed_paths(desired, deployment())
    assert action == "update" and len(paths) == MAX_PATHS + 1 and paths[-1] == "... and 5 more"


def test_a_number_answered_as_text_is_no_change() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    assert changed_paths(deployment(), live) == ("unchanged", [])
