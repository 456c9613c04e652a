"""`plan=true` on a mutating tool (decision 0021): what the call would change, and nothing changed.

A plan lists the rows the call would write and the Kubernetes objects it would apply, rendered by the same
`workflows.render` functions the workflows apply, each checked by the API server's own server-side dry run
(`dryRun=All`: validation, defaulting, admission; nothing persisted) and compared with what the cluster holds.
No row is written, no workflow starts; the server writes the call's one audit row (with `plan: true` in its
arguments, which `get_audit_log` shows as outcome `planned`). Secret values never appear: rows list secret
names, Secret objects their keys.

Without a cluster (no kubeconfig) the plan still lists rows and objects, with `validated: false` and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from tools.context import CallContext
from tools.errors import InvalidInput
from tools.ports import DryRunRefused, DryRunUnavailable
from workflows.domain.plan_diff import changed_paths, redact_object
from workflows.domain.specs import ClusterCaps

NO_CLUSTER = "no cluster is configured for this server (cluster.kubeconfig), so the API server was not asked"


class PlanReady(ToolError):
    """Raised by a tool with its plan instead of returning its result: the plan is not the tool's declared
    output, which the SDK would validate it against. The server answers it as the call's result
    (`mcp_server.server`), and the audit row is the call's ordinary one."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        super().__init__(f"plan of {plan.tool}")


class PlannedRow(BaseModel):
    table: str
    action: Literal["insert", "update", "delete"]
    key: str
    fields: dict[str, Any] = Field(default_factory=dict, description="Secret values never shown.")


class PlannedObject(BaseModel):
    ref: str = Field(description="Kind/namespace/name.")
    action: Literal["create", "update", "unchanged", "delete", "scale"]
    changed: list[str] = Field(default_factory=list, description="Paths that would change (update).")
    validated: bool = Field(False, description="The API server's dry run accepted it.")
    object: dict[str, Any] | None = Field(None, description="As rendered; Secret values redacted.")


class Plan(BaseModel):
    planned: Literal[True] = True
    tool: str
    rows: list[PlannedRow]
    objects: list[PlannedObject]
    validated: bool = Field(description="The API server's dry run accepted every object.")
    reason: str | None = Field(None, description="Why not validated.")
    next_step: str = "Nothing was changed. Call again without `plan` to make these changes."


# "Deployment.apps \"web-r1\" is invalid: metadata.labels: Invalid value: ..." -> metadata.labels
_FIELD = re.compile(r"(?:is invalid|is forbidden)?:\s*\[?((?:metadata|spec|data|stringData|type)[\w.\[\]\-/=]*):")


def refused_field(e: DryRunRefused) -> str:
    m = _FIELD.search(e.message)
    return f"{e.what} {m[1]}" if m else e.what


def object_ref(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name`, as audit rows name objects (`workflows.adapters.kube.ref`, not imported: it loads
    the Kubernetes client)."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{ns}/{md.get('name')}" if ns else f"{obj.get('kind')}/{md.get('name')}"


async def planned_caps(c: CallContext) -> ClusterCaps:
    """What the renderers choose API versions from: the cluster's, or (no cluster, or unreachable) the
    defaults of a current Kubernetes."""
    if c.planner is not None:
        try:
            return await c.planner.caps()
        except DryRunUnavailable:
            pass
    return ClusterCaps(minor=30)


async def make_plan(c: CallContext, tool: str, rows: list[PlannedRow], objects: Sequence[dict[str, Any]] = (),
                    *, scales: Sequence[tuple[str, str, int]] = (), deletes: Sequence[str] = ()) -> Plan:
    """Validate and diff `objects` (to apply) and `scales` (namespace, deployment, replicas) against the
    cluster. A refusal by the API server is the tool's error, naming the object and field, as the real call
    would fail; an unreachable cluster leaves the plan unvalidated, saying why."""
    planned: list[PlannedObject] = []
    reason = None if c.planner is not None or not (objects or scales) else NO_CLUSTER
    new_namespaces: set[str] = set()  # created by this plan: nothing in them can be dry-run before they exist
    for obj in objects:
        action: Literal["create", "update", "unchanged"] = "create"
        changed: list[str] = []
        checked = False
        ns = (obj.get("metadata") or {}).get("namespace")
        if c.planner is not None and reason is None and ns not in new_namespaces:
            try:
                live = await c.planner.live(obj)
                await c.planner.dry_run_apply(obj)
                action, changed = changed_paths(obj, live)
                checked = True
                if obj.get("kind") == "Namespace" and live is None:
                    new_namespaces.add(obj["metadata"]["name"])
            except DryRunUnavailable as e:
                reason = str(e)
            except DryRunRefused as e:
                raise InvalidInput(refused_field(e), f"the cluster's API server refuses it: {e.message}",
                                   "change the argument that sets it; nothing was changed") from e
        elif ns in new_namespaces and reason is None:
            reason = (f"the namespace {ns} does not exist yet, so the API server can check the objects in it only "
                      "once it does (the Namespace itself was checked)")
        planned.append(PlannedObject(ref=object_ref(obj), action=action, changed=changed, validated=checked,
                                     object=redact_object(obj)))
    for ns_, dep, replicas in scales:
        if c.planner is not None and reason is None:
            try:
                live = await c.planner.live({"apiVersion": "apps/v1", "kind": "Deployment",
                                             "metadata": {"namespace": ns_, "name": dep}})
                await c.planner.dry_run_scale(ns_, dep, replicas)
                now = ((live or {}).get("spec") or {}).get("replicas")
                planned.append(PlannedObject(ref=f"Deployment/{ns_}/{dep}", action="scale", validated=True,
                                             changed=[] if now == replicas else ["spec.replicas"]))
                continue
            except DryRunUnavailable as e:
                reason = str(e)
            except DryRunRefused as e:
                raise InvalidInput(refused_field(e), f"the cluster's API server refuses it: {e.message}",
                                   "change the argument that sets it; nothing was changed") from e
        planned.append(PlannedObject(ref=f"Deployment/{ns_}/{dep}", action="scale", changed=["spec.replicas"]))
    planned += [PlannedObject(ref=r, action="delete") for r in deletes]
    c.audit.k8s_refs = [p.ref for p in planned]
    return Plan(tool=tool, rows=rows, objects=planned, validated=reason is None, reason=reason)
