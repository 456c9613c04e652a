"""The worker's RBAC is exactly what its code uses.

- The ClusterRole in manifests/base/rbac.yaml grants every Permission of workflows/domain/permissions.py and
  nothing beyond (no wildcard, no extra verb or resource), and is bound to the worker's ServiceAccount only.
- The server's ServiceAccount mounts no token and is bound to nothing in base; the server-pod-logs component
  (installs without Loki) grants exactly SERVER_POD_LOG_PERMISSIONS, what workflows/adapters/kube_logs.py calls.
- The list itself follows the code, read from its source: every literal (apiVersion, kind) the activities
  read, list, watch or delete, and every object the renderers and activities build for apply, has its verb
  in the list; the scale, pod-log and event helpers have theirs.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from workflows.adapters.kube import KINDS
from workflows.domain.permissions import SERVER_POD_LOG_PERMISSIONS, WORKER_PERMISSIONS, Permission
from workflows.domain.preflight import PREFLIGHT_READS

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "manifests" / "base" / "rbac.yaml"
SERVER_RBAC = ROOT / "manifests" / "components" / "server-pod-logs" / "rbac.yaml"
ACTIVITIES = sorted((ROOT / "workflows" / "activities").glob("*.py"))
CALLERS = ACTIVITIES
SERVER_CALLERS = [ROOT / "workflows" / "adapters" / "kube_logs.py"]
RENDERERS = [*sorted((ROOT / "workflows" / "render").glob("*.py")), *ACTIVITIES]
# Kube methods taking (apiVersion, kind, ...) and the verb each is authorized as
KIND_METHODS = {"get": "get", "list_objects": "list", "delete": "delete", "watch": "watch"}
# Kube helpers with a fixed resource
FIXED = {
    "scale": ("apps", "deployments/scale", "patch"),
    "pod_log": ("", "pods/log", "get"),
    "pod_logs": ("", "pods/log", "get"),
    "follow_pod_log": ("", "pods/log", "get"),
    "events_for": ("", "events", "list"),
}

Grant = tuple[str, str, str]  # (group, resource, verb)


def _docs(path: Path = RBAC) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _one(kind: str, name: str, path: Path = RBAC) -> dict[str, Any]:
    found = [d for d in _docs(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{path}: expected one {kind} {name}"
    return found[0]


def _granted(role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule fields {sorted(rule)}"
        for value in (*rule["apiGroups"], *rule["resources"], *rule["verbs"]):
            assert "*" not in value, f"wildcard {value!r} in {rule}"
        out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def _needed(permissions: tuple[Permission, ...] = WORKER_PERMISSIONS) -> set[Grant]:
    return {(p.group, p.resource, p.verb) for p in permissions}


def _resource(api_version: str, kind: str) -> tuple[str, str]:
    plural, _ = KINDS[(api_version, kind)]
    return (api_version.rsplit("/", 1)[0] if "/" in api_version else "", plural)


def test_cluster_role_grants_exactly_the_permissions_the_code_uses() -> None:
    granted = _granted(_one("ClusterRole", "deploy-mcp-worker"))
    needed = _needed()
    assert not needed - granted, f"add to the ClusterRole in {RBAC}: {sorted(needed - granted)}"
    assert not granted - needed, (f"the ClusterRole in {RBAC} grants what no code uses (drop it, or add it to "
                                  f"workflows/domain/permissions.py with the code that needs it): "
                                  f"{sorted(granted - needed)}")


def test_the_role_is_bound_to_the_worker_only_and_the_server_has_no_token() -> None:
    binding = _one("ClusterRoleBinding", "deploy-mcp-worker")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "deploy-mcp-worker"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deploy-mcp-worker",
                                    "namespace": "deploy-mcp-system"}]
    assert _one("ServiceAccount", "deploy-mcp-server")["automountServiceAccountToken"] is False
    reads = _one("ClusterRoleBinding", "deploy-mcp-preflight")
    assert reads["subjects"] == binding["subjects"] and reads["roleRef"]["name"] == "deploy-mcp-preflight"
    bindings = [d for d in _docs() if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings == [binding, reads]


def test_the_preflight_role_grants_exactly_what_preflight_reads() -> None:
    assert _granted(_one("ClusterRole", "deploy-mcp-preflight")) == _needed(PREFLIGHT_READS)


def test_the_server_pod_logs_component_grants_exactly_what_the_log_adapter_uses() -> None:
    granted = _granted(_one("ClusterRole", "deploy-mcp-server-pod-logs", SERVER_RBAC))
    assert granted == _needed(SERVER_POD_LOG_PERMISSIONS)
    binding = _one("ClusterRoleBinding", "deploy-mcp-server-pod-logs", SERVER_RBAC)
    assert binding["roleRef"]["name"] == "deploy-mcp-server-pod-logs"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deploy-mcp-server",
                                    "namespace": "deploy-mcp-system"}]
    used = _used_by_the_source(SERVER_CALLERS, renderers=[])
    assert set(used) == _needed(SERVER_POD_LOG_PERMISSIONS), used


def test_permissions_are_unique_and_their_scope_matches_the_api() -> None:
    assert len(_needed()) == len(WORKER_PERMISSIONS)
    scope = {_resource(av, k): namespaced for (av, k), (_, namespaced) in KINDS.items()}
    for p in (*WORKER_PERMISSIONS, *SERVER_POD_LOG_PERMISSIONS):
        assert scope[(p.group, p.base_resource)] == p.namespaced, p
        assert p.used_by, f"{p} names no code"
    assert Permission("", "pods/log", "get", True).subresource == "log"
    assert Permission("", "pods/log", "get", True).base_resource == "pods"


def _str(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kube_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls of `self.kube.<method>(...)` or `kube.<method>(...)`."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if (isinstance(target, ast.Attribute) and target.attr == "kube") or (
                    isinstance(target, ast.Name) and target.id == "kube"):
                calls.append(node)
    return calls


def _used_by_the_source(callers: list[Path] = CALLERS, renderers: list[Path] = RENDERERS) -> dict[Grant, str]:
    used: dict[Grant, str] = {}
    for path in callers:
        for call in _kube_calls(ast.parse(path.read_text())):
            method = call.func.attr  # type: ignore[attr-defined]
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if method in FIXED:
                used[FIXED[method]] = where
            elif method in KIND_METHODS and len(call.args) >= 2:
                api_version, kind = _str(call.args[0]), _str(call.args[1])
                if api_version and kind:
                    used[(*_resource(api_version, kind), KIND_METHODS[method])] = where
    for path in renderers:  # every object literal built here is applied (or created) by the worker
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Dict):
                continue
            fields = {_str(k): v for k, v in zip(node.keys, node.values, strict=True) if k is not None}
            api_version, kind = _str(fields.get("apiVersion") or ast.Constant(None)), _str(
                fields.get("kind") or ast.Constant(None))
            if kind == "PodDisruptionBudget":  # its apiVersion is the cluster's (caps.pdb_api)
                api_version = "policy/v1"
            if api_version and kind and (api_version, kind) in KINDS:
                for verb in ("create", "patch"):
                    used[(*_resource(api_version, kind), verb)] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return used


def test_every_call_the_source_makes_is_in_the_list() -> None:
    used = _used_by_the_source()
    assert len(used) > 20, "the source scan found too little: has the Kube client's interface changed?"
    missing = {g: where for g, where in used.items() if g not in _needed()}
    assert not missing, f"add to workflows/domain/permissions.py (and the ClusterRole): {missing}"
