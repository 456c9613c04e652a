"""Preflight: does this cluster have everything the platform relies on? Pure logic over plain data.

`ClusterFacts` is what the API server answered (gathered by `workflows.adapters.cluster_facts`; the unit tests
record answers by hand), `Expectations` is what the settings ask for, and `run_checks` turns the two into one
`CheckResult` per thing relied on: `ok`, `missing` (the platform cannot work: `deploy-mcp preflight` exits 1)
or `warning` (works, but not as designed, or could not be checked), each missing piece with the command that
fixes it. `deploy-mcp preflight` prints the results, the worker runs them at start and stores the summary
`whoami` shows operators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from workflows.domain.permissions import WORKER_PERMISSIONS, Permission

Status = Literal["ok", "missing", "warning"]

CERT_MANAGER_CRD = "certificates.cert-manager.io"
SNAPSHOT_CRD = "volumesnapshots.snapshot.storage.k8s.io"
LONGHORN_CRD = "recurringjobs.longhorn.io"
DEFAULT_INGRESS_CLASS = "ingressclass.kubernetes.io/is-default-class"

# group/version -> what needs it; the PDB is either of two versions (`ClusterCaps.pdb_api`)
REQUIRED_APIS: dict[str, str] = {
    "apps/v1": "release Deployments",
    "batch/v1": "build Jobs",
    "networking.k8s.io/v1": "Ingress and NetworkPolicy",
    "node.k8s.io/v1": "the RuntimeClass of customer pods",
}
PDB_APIS = ("policy/v1", "policy/v1beta1")

# What preflight itself reads. Not the worker's job, so not in WORKER_PERMISSIONS (nor its ClusterRole): when
# the worker cannot read these, its preflight says "not checked", a warning.
PREFLIGHT_READS: tuple[Permission, ...] = (
    Permission("", "nodes", "list", False, "preflight: pools and taints"),
    Permission("node.k8s.io", "runtimeclasses", "list", False, "preflight: RuntimeClass"),
    Permission("storage.k8s.io", "storageclasses", "list", False, "preflight: StorageClasses"),
    Permission("networking.k8s.io", "ingressclasses", "list", False, "preflight: IngressClass"),
    Permission("apiextensions.k8s.io", "customresourcedefinitions", "list", False, "preflight: CRDs"),
)


class CheckResult(BaseModel):
    """One thing the platform relies on, and whether the cluster has it."""

    check: str
    status: Status
    detail: str
    fix: str | None = None


class PreflightReport(BaseModel):
    results: list[CheckResult]

    @property
    def missing(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "missing"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "warning"]

    @property
    def ok(self) -> bool:
        """The platform can work here (warnings do not change that)."""
        return not self.missing


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    taints: Sequence[tuple[str, str, str]] = ()  # (key, value, effect)


@dataclass(frozen=True)
class Reachability:
    reachable: bool
    detail: str


@dataclass
class ClusterFacts:
    """The API server's answers. None: the question could not be asked (the reason is in `unreadable`)."""

    served_apis: set[str]  # "v1", "apps/v1", "policy/v1beta1", ...
    runtime_classes: set[str] | None = None
    nodes: list[Node] | None = None
    storage_classes: set[str] | None = None
    ingress_classes: dict[str, bool] | None = None  # name -> is the cluster's default
    crds: set[str] | None = None
    allowed: dict[Permission, bool] = field(default_factory=dict)  # SelfSubjectAccessReview answers
    buildkit: Reachability | None = None  # None: not asked (local builder)
    unreadable: dict[str, str] = field(default_factory=dict)  # fact -> why it is None


@dataclass(frozen=True)
class Expectations:
    """What the settings make the platform rely on (built from `mcp_server.settings.Settings`)."""

    runtime_class: str | None = "gvisor"
    storage_classes: tuple[str, ...] = ("fast", "standard")
    ingress_class: str | None = None  # None: the cluster's default IngressClass
    builder: str = "local"
    buildkit_addr: str = ""
    build_pool: str = "build"
    volumes: bool = True
    edge_pool: bool = False
    permissions: tuple[Permission, ...] = WORKER_PERMISSIONS


def _not_checked(check: str, facts: ClusterFacts, fact: str, fix: str) -> CheckResult:
    reason = facts.unreadable.get(fact, "not asked")
    return CheckResult(check=check, status="warning", detail=f"not checked: {reason}", fix=fix)


_READ_FIX = ("kubectl apply -k manifests/base (its ClusterRole deploy-mcp-preflight lets the worker read these), "
             "or run `deploy-mcp preflight` with a kubeconfig that may")


def check_apis(facts: ClusterFacts) -> list[CheckResult]:
    out = []
    for api, why in REQUIRED_APIS.items():
        served = api in facts.served_apis
        out.append(CheckResult(
            check=f"api {api}", status="ok" if served else "missing",
            detail=f"served ({why})" if served else f"not served; needed for {why}",
            fix=None if served else "use Kubernetes >= 1.20 (k3s: any current release)"))
    pdb = next((v for v in PDB_APIS if v in facts.served_apis), None)
    out.append(CheckResult(
        check="api policy (PodDisruptionBudget)", status="ok" if pdb else "missing",
        detail=f"{pdb} served" if pdb else "neither policy/v1 nor policy/v1beta1 is served",
        fix=None if pdb else "use Kubernetes >= 1.20 (k3s: any current release)"))
    return out


def check_runtime_class(facts: ClusterFacts, expect: Expectations) -> CheckResult:
    name = expect.runtime_class
    if not name:
        return CheckResult(check="runtime class", status="warning",
                           detail="cluster.runtime_class is empty: customer pods run without a sandbox",
                           fix="set DEPLOY_MCP_CLUSTER__RUNTIME_CLASS=gvisor and apply manifests/components/gvisor")
    if facts.runtime_classes is None:
        return _not_checked(f"runtime class {name}", facts, "runtime_classes", _READ_FIX)
    if name in facts.runtime_classes:
        return CheckResult(check=f"runtime class {name}", status="ok", detail="exists")
    fix = ("kubectl apply -k manifests/components/gvisor" if name == "gvisor"
           else f"create RuntimeClass {name} (or set cluster.runtime_class to one of: "
                f"{', '.join(sorted(facts.runtime_classes)) or 'none exist'})")
    return CheckResult(check=f"runtime class {name}", status="missing",
                       detail="no such RuntimeClass: every customer pod names it, none would start", fix=fix)


def _pool(facts: ClusterFacts, pool: str, *, required: bool, why: str) -> list[CheckResult]:
    check = f"node pool {pool}"
    if facts.nodes is None:
        return [_not_checked(check, facts, "nodes", _READ_FIX)]
    members = [n for n in facts.nodes if n.labels.get("pool") == pool]
    if not members:
        return [CheckResult(check=check, status="missing" if required else "warning",
                            detail=f"no node is labelled pool={pool} ({why})",
                            fix=f"kubectl label node <node> pool={pool}")]
    names = ", ".join(n.name for n in members)
    out = [CheckResult(check=check, status="ok", detail=f"{len(members)} node(s): {names}")]
    untainted = [n.name for n in members if ("pool", pool, "NoSchedule") not in n.taints]
    if untainted:
        # a warning: one node carrying every pool (k3s-single-node) is untainted on purpose
        out.append(CheckResult(
            check=f"node pool {pool} taint", status="warning",
            detail=f"untainted, so other pods may land there: {', '.join(untainted)}",
            fix=f"kubectl taint node {untainted[0]} pool={pool}:NoSchedule (skip on a single node)"))
    else:
        out.append(CheckResult(check=f"node pool {pool} taint", status="ok", detail=f"pool={pool}:NoSchedule"))
    return out


def check_pools(facts: ClusterFacts, expect: Expectations) -> list[CheckResult]:
    buildkit = expect.builder == "buildkit"
    return [
        *_pool(facts, "run", required=True, why="customer pods select pool=run"),
        *_pool(facts, expect.build_pool, required=buildkit,
               why="build Jobs select it" if buildkit else "only the buildkit builder needs it"),
        *_pool(facts, "edge", required=expect.edge_pool,
               why="the ingress runs there" if expect.edge_pool else "optional: a dedicated ingress pool"),
    ]


def check_storage_classes(facts: ClusterFacts, expect: Expectations) -> list[CheckResult]:
    out = []
    for name in expect.storage_classes:
        check = f"storage class {name}"
        if facts.storage_classes is None:
            out.append(_not_checked(check, facts, "storage_classes", _READ_FIX))
        elif name in facts.storage_classes:
            out.append(CheckResult(check=check, status="ok", detail="exists"))
        else:
            out.append(CheckResult(
                check=check, status="missing" if expect.volumes else "warning",
                detail="no such StorageClass: volumes of this class would never bind",
                fix="kubectl apply -k manifests/components/storage (or map cluster.storage_classes to "
                    f"one of: {', '.join(sorted(facts.storage_classes)) or 'none exist'})"))
    return out


def check_ingress_class(facts: ClusterFacts, expect: Expectations) -> CheckResult:
    check = f"ingress class {expect.ingress_class or '(cluster default)'}"
    if facts.ingress_classes is None:
        return _not_checked(check, facts, "ingress_classes", _READ_FIX)
    if expect.ingress_class:
        if expect.ingress_class in facts.ingress_classes:
            return CheckResult(check=check, status="ok", detail="exists")
        return CheckResult(check=check, status="missing", detail="no such IngressClass: no app would be reachable",
                           fix="install the ingress controller (k3s ships Traefik) or set cluster.ingress_class to "
                               f"one of: {', '.join(sorted(facts.ingress_classes)) or 'none exist'}")
    defaults = [n for n, is_default in facts.ingress_classes.items() if is_default]
    if defaults:
        return CheckResult(check=check, status="ok", detail=f"default: {defaults[0]}")
    return CheckResult(check=check, status="missing",
                       detail="cluster.ingress_class is unset and no IngressClass is the default",
                       fix=f"kubectl annotate ingressclass <name> {DEFAULT_INGRESS_CLASS}=true, or set "
                           "DEPLOY_MCP_CLUSTER__INGRESS_CLASS")


def check_crds(facts: ClusterFacts, expect: Expectations) -> list[CheckResult]:
    wanted = [
        (CERT_MANAGER_CRD, True, "TLS certificates for app hostnames",
         "install cert-manager (https://cert-manager.io/docs/installation/), then "
         "kubectl apply -k manifests/components/cert-manager-issuer"),
        (SNAPSHOT_CRD, expect.volumes, "volume snapshots and backups", "kubectl apply -k manifests/storage/crds"),
        (LONGHORN_CRD, expect.volumes, "volume backup schedules (Longhorn)",
         "install Longhorn (https://longhorn.io/docs/latest/deploy/install/)"),
    ]
    out = []
    for name, required, why, fix in wanted:
        check = f"crd {name}"
        if facts.crds is None:
            out.append(_not_checked(check, facts, "crds", _READ_FIX))
        elif name in facts.crds:
            out.append(CheckResult(check=check, status="ok", detail=f"served ({why})"))
        else:
            out.append(CheckResult(check=check, status="missing" if required else "warning",
                                   detail=f"not installed; needed for {why}", fix=fix))
    return out


def check_buildkit(facts: ClusterFacts, expect: Expectations) -> CheckResult:
    if expect.builder != "buildkit":
        return CheckResult(check="buildkit", status="warning",
                           detail="build.builder is `local`: builds run with buildah on the worker's host "
                                  "(development only)",
                           fix="kubectl apply -k manifests/components/buildkit and set DEPLOY_MCP_BUILD__BUILDER="
                               "buildkit")
    if facts.buildkit is None:
        return CheckResult(check=f"buildkit {expect.buildkit_addr}", status="warning", detail="not checked")
    if facts.buildkit.reachable:
        return CheckResult(check=f"buildkit {expect.buildkit_addr}", status="ok", detail=facts.buildkit.detail)
    return CheckResult(check=f"buildkit {expect.buildkit_addr}", status="missing",
                       detail=f"not reachable: {facts.buildkit.detail}",
                       fix="kubectl apply -k manifests/components/buildkit (or set build.buildkit_addr); from "
                           "outside the cluster, a Service name does not resolve: run preflight in the cluster")


def _verb_phrase(p: Permission) -> str:
    resource = f"{p.resource}.{p.group}" if p.group else p.resource
    return f"{p.verb} {resource}"


def check_permissions(facts: ClusterFacts, expect: Expectations) -> list[CheckResult]:
    out = []
    denied = [p for p in expect.permissions if facts.allowed.get(p) is False]
    unknown = [p for p in expect.permissions if p not in facts.allowed]
    for p in denied:
        scope = "in every namespace" if p.namespaced else "cluster-wide"
        out.append(CheckResult(check=f"permission {_verb_phrase(p)}", status="missing",
                               detail=f"denied {scope}; used by {p.used_by or 'the worker'}",
                               fix="kubectl apply -k manifests/base (the worker's ClusterRole grants exactly "
                                   "workflows/domain/permissions.py)"))
    if unknown:
        out.append(CheckResult(check="permissions", status="warning",
                               detail=f"{len(unknown)} not asked: {facts.unreadable.get('permissions', 'no answer')}"))
    if not denied and not unknown:
        out.append(CheckResult(check="permissions", status="ok",
                               detail=f"all {len(expect.permissions)} verbs the worker uses are allowed"))
    reads_denied = [p for p in PREFLIGHT_READS if facts.allowed.get(p) is False]
    if reads_denied:
        out.append(CheckResult(check="preflight reads", status="warning",
                               detail="this identity cannot " + ", ".join(_verb_phrase(p) for p in reads_denied)
                                      + ": those checks are not checked", fix=_READ_FIX))
    return out


def run_checks(facts: ClusterFacts, expect: Expectations) -> PreflightReport:
    results: list[CheckResult] = [
        *check_apis(facts),
        check_runtime_class(facts, expect),
        *check_pools(facts, expect),
        *check_storage_classes(facts, expect),
        check_ingress_class(facts, expect),
        *check_crds(facts, expect),
        check_buildkit(facts, expect),
        *check_permissions(facts, expect),
    ]
    return PreflightReport(results=results)


def permissions_to_ask(expect: Expectations) -> list[Permission]:
    """Every SelfSubjectAccessReview preflight makes: the worker's verbs, then what preflight reads."""
    return list(dict.fromkeys([*expect.permissions, *PREFLIGHT_READS]))


def format_report(report: PreflightReport) -> Iterable[str]:
    """Lines for a terminal: one per check, the fix under each missing piece, a verdict last."""
    marks = {"ok": "ok     ", "missing": "MISSING", "warning": "warning"}
    for r in report.results:
        yield f"{marks[r.status]}  {r.check}: {r.detail}"
        if r.fix and r.status != "ok":
            yield f"         fix: {r.fix}"
    n_missing, n_warn = len(report.missing), len(report.warnings)
    yield (f"preflight: {n_missing} missing, {n_warn} warning(s): the platform cannot work here until the missing "
           "pieces are fixed" if n_missing else f"preflight: ready ({n_warn} warning(s))")
