"""How a plan reads the API server's answers (tools/plan.py): a refusal names the object and its field, a new
namespace's objects wait for it, an unreachable cluster leaves the plan unvalidated. The planner here is an
in-memory `ClusterPlanner` (the port), not a Kubernetes fake: the API server's own dry run is the testbed's
(tests/integration/test_plan_on_testbed.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tools.context import CallContext, PlatformConfig, Principal
from tools.errors import InvalidInput
from tools.plan import NO_CLUSTER, make_plan, refused_field
from tools.ports import DryRunRefused, DryRunUnavailable
from workflows.domain.specs import ClusterCaps


@dataclass
class Planner:
    live_objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    down: bool = False
    applied: list[str] = field(default_factory=list)

    async def caps(self) -> ClusterCaps:
        return ClusterCaps(minor=20)

    async def live(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        if self.down:
            raise DryRunUnavailable("the cluster's API server could not be asked (timeout)")
        return self.live_objects.get(obj["metadata"]["name"])

    async def dry_run_apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        self.applied.append(name)
        if name in self.refuse:
            raise DryRunRefused(f"{obj['kind']}/{name}", self.refuse[name])
        return obj

    async def dry_run_scale(self, namespace: str, deployment: str, replicas: int) -> dict[str, Any]:
        return {}


def ctx(planner: Planner | None) -> CallContext:
    return CallContext(principal=Principal("t", "a", frozenset(), "memory"), store=None,  # type: ignore[arg-type]
                       config=PlatformConfig(apps_domain="apps.test"), planner=planner)


NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t-p"}}
DEP = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-r1", "namespace": "t-p"},
       "spec": {"replicas": 2}}


def test_the_field_is_read_from_the_api_servers_message() -> None:
    assert refused_field(DryRunRefused("Deployment/t-p/w", 'Deployment.apps "w" is invalid: [spec.template.spec.'
                                       'containers[0].image: Required value, metadata.labels: Invalid value'
                                       )) == "Deployment/t-p/w spec.template.spec.containers[0].image"
    assert refused_field(DryRunRefused("Pod/x", "admission webhook denied the request")) == "Pod/x"


async def test_a_refusal_is_the_tools_error_naming_object_and_field() -> None:
    p = Planner(live_objects={"t-p": NS},
                refuse={"web-r1": 'Deployment.apps "web-r1" is invalid: metadata.labels: Invalid value: "-x"'})
    with pytest.raises(InvalidInput) as e:
        await make_plan(ctx(p), "deploy", [], [NS, DEP])
    assert "Deployment/web-r1 metadata.labels" in str(e.value) and "nothing was changed" in str(e.value)


async def test_objects_of_a_namespace_the_plan_creates_wait_for_it() -> None:
    p = Planner()
    plan = await make_plan(ctx(p), "create_app", [], [NS, DEP])
    assert [(o.ref, o.action, o.validated) for o in plan.objects] == [
        ("Namespace/t-p", "create", True), ("Deployment/t-p/web-r1", "create", False)]
    assert p.applied == ["t-p"] and not plan.validated and "t-p does not exist yet" in (plan.reason or "")


async def test_an_existing_object_is_diffed_after_its_dry_run() -> None:
    p = Planner(live_objects={"t-p": NS, "web-r1": DEP | {"spec": {"replicas": 1}}})
    plan = await make_plan(ctx(p), "deploy", [], [NS, DEP])
    assert [(o.action, o.changed) for o in plan.objects] == [("unchanged", []), ("update", ["spec.replicas"])]
    assert plan.validated and plan.reason is None


async def test_no_cluster_or_an_unreachable_one_leaves_the_plan_unvalidated() -> None:
    plan = await make_plan(ctx(None), "deploy", [], [DEP])
    assert not plan.validated and plan.reason == NO_CLUSTER and plan.objects[0].object == DEP
    plan = await make_plan(ctx(Planner(down=True)), "deploy", [], [DEP])
    assert not plan.validated and "timeout" in (plan.reason or "")
