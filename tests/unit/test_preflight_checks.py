"""The preflight's verdicts over recorded API answers (`workflows.domain.preflight`): a complete cluster passes;
a missing RuntimeClass, a denied permission, a missing run pool, a missing CRD or StorageClass fail it with
the command that fixes each; warnings (an untainted pool, the local builder, an unreadable fact) do not; the
SelfSubjectAccessReviews ask what RBAC grants (a subresource split off, no namespace)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mcp_server.preflight import expectations
from mcp_server.settings import load_settings
from workflows.adapters.cluster_facts import access_review, buildkit_endpoint
from workflows.domain.permissions import WORKER_PERMISSIONS, Permission
from workflows.domain.preflight import (
    CERT_MANAGER_CRD,
    LONGHORN_CRD,
    PREFLIGHT_READS,
    SNAPSHOT_CRD,
    ClusterFacts,
    Expectations,
    Node,
    Reachability,
    format_report,
    permissions_to_ask,
    run_checks,
)

# `kubectl api-versions` of a k3s 1.31 (trimmed to what matters) and of the testbed's 1.20
K3S_APIS = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "node.k8s.io/v1", "policy/v1", "storage.k8s.io/v1",
            "apiextensions.k8s.io/v1", "authorization.k8s.io/v1", "cert-manager.io/v1", "longhorn.io/v1beta2",
            "snapshot.storage.k8s.io/v1"}
TESTBED_APIS = (K3S_APIS - {"policy/v1", "cert-manager.io/v1", "longhorn.io/v1beta2",
                            "snapshot.storage.k8s.io/v1"}) | {"policy/v1beta1"}

EXPECT = Expectations(builder="buildkit", buildkit_addr="tcp://buildkitd.deploy-mcp-builds:1234", edge_pool=True)


def complete() -> ClusterFacts:
    """A pooled k3s with every prerequisite applied."""
    return ClusterFacts(
        served_apis=set(K3S_APIS),
        runtime_classes={"gvisor", "runc"},
        nodes=[Node("k3s-server", {"node-role.kubernetes.io/control-plane": "true"}),
               Node("run-1", {"pool": "run"}, [("pool", "run", "NoSchedule")]),
               Node("build-1", {"pool": "build"}, [("pool", "build", "NoSchedule")]),
               Node("edge-1", {"pool": "edge"}, [("pool", "edge", "NoSchedule")])],
        storage_classes={"fast", "standard", "local-path"},
        ingress_classes={"traefik": True},
        crds={CERT_MANAGER_CRD, SNAPSHOT_CRD, LONGHORN_CRD, "ingressroutes.traefik.io"},
        allowed={p: True for p in permissions_to_ask(EXPECT)},
        buildkit=Reachability(True, "TCP connect to buildkitd.deploy-mcp-builds:1234 succeeded"),
    )


def statuses(facts: ClusterFacts, expect: Expectations = EXPECT) -> dict[str, Any]:
    return {r.check: r for r in run_checks(facts, expect).results}


def test_a_complete_cluster_passes_with_no_warning() -> None:
    report = run_checks(complete(), EXPECT)
    assert report.ok and not report.warnings, [r for r in report.results if r.status != "ok"]
    lines = list(format_report(report))
    assert lines[-1] == "preflight: ready (0 warning(s))"


def test_a_missing_runtime_class_fails_with_the_component_to_apply() -> None:
    facts = complete()
    facts.runtime_classes = {"runc"}
    report = run_checks(facts, EXPECT)
    assert not report.ok
    [missing] = report.missing
    assert missing.check == "runtime class gvisor"
    assert missing.fix == "kubectl apply -k manifests/components/gvisor"


def test_a_denied_permission_fails_naming_verb_resource_and_caller() -> None:
    facts = complete()
    scale = next(p for p in WORKER_PERMISSIONS if p.resource == "deployments/scale")
    facts.allowed[scale] = False
    report = run_checks(facts, EXPECT)
    [missing] = report.missing
    assert missing.check == "permission patch deployments/scale.apps"
    assert "scale_release" in missing.detail and "every namespace" in missing.detail
    assert missing.fix and "kubectl apply -k manifests/base" in missing.fix


def test_a_missing_run_pool_fails_with_the_label_command() -> None:
    facts = complete()
    assert facts.nodes is not None
    facts.nodes = [n for n in facts.nodes if n.labels.get("pool") != "run"]
    [missing] = run_checks(facts, EXPECT).missing
    assert (missing.check, missing.fix) == ("node pool run", "kubectl label node <node> pool=run")


def test_an_untainted_pool_and_a_missing_optional_edge_pool_only_warn() -> None:
    facts = complete()
    facts.nodes = [Node("one", {"pool": "run"}), Node("two", {"pool": "build"}, [("pool", "build", "NoSchedule")])]
    report = run_checks(facts, replace(EXPECT, edge_pool=False))
    assert report.ok
    warned = {r.check: r for r in report.warnings}
    assert warned["node pool run taint"].fix == "kubectl taint node one pool=run:NoSchedule (skip on a single node)"
    assert "node pool edge" in warned
    assert not run_checks(facts, EXPECT).ok  # the pooled overlay asks for an edge pool


def test_the_testbed_lacks_cert_manager_snapshots_longhorn_and_pools() -> None:
    """What a fresh testbed answers (v1.20, node1 labelled pool=run, no CRDs, no classes)."""
    facts = ClusterFacts(served_apis=set(TESTBED_APIS), runtime_classes={"runc"},
                         nodes=[Node("node1", {"pool": "run"})], storage_classes=set(), ingress_classes={},
                         crds=set(), allowed={p: True for p in permissions_to_ask(EXPECT)},
                         buildkit=Reachability(False, "TCP connect to buildkitd.deploy-mcp-builds:1234: "
                                                      "Name or service not known"))
    s = statuses(facts)
    assert s["api policy (PodDisruptionBudget)"].detail == "policy/v1beta1 served"
    missing = {c for c, r in s.items() if r.status == "missing"}
    assert missing == {"runtime class gvisor", "node pool build", "node pool edge", "storage class fast",
                       "storage class standard", "ingress class (cluster default)", f"crd {CERT_MANAGER_CRD}",
                       f"crd {SNAPSHOT_CRD}", f"crd {LONGHORN_CRD}",
                       "buildkit tcp://buildkitd.deploy-mcp-builds:1234"}, missing
    assert all(s[c].fix for c in missing)


def test_without_volumes_the_storage_pieces_only_warn() -> None:
    facts = complete()
    facts.crds = {CERT_MANAGER_CRD}
    facts.storage_classes = set()
    report = run_checks(facts, replace(EXPECT, volumes=False))
    assert report.ok
    assert {r.check for r in report.warnings} >= {f"crd {SNAPSHOT_CRD}", "storage class fast"}


def test_facts_the_identity_cannot_read_are_warnings_not_failures() -> None:
    facts = complete()
    facts.nodes = None
    facts.unreadable["nodes"] = "list Node: 403 Forbidden"
    for p in PREFLIGHT_READS:
        facts.allowed[p] = p.resource != "nodes"
    report = run_checks(facts, EXPECT)
    assert report.ok
    warned = {r.check: r.detail for r in report.warnings}
    assert warned["node pool run"] == "not checked: list Node: 403 Forbidden"
    assert "list nodes" in warned["preflight reads"]


def test_an_explicit_ingress_class_must_exist() -> None:
    facts = complete()
    s = statuses(facts, replace(EXPECT, ingress_class="nginx"))
    assert s["ingress class nginx"].status == "missing"
    assert "traefik" in (s["ingress class nginx"].fix or "")


def test_an_unreachable_builder_fails_and_the_local_builder_warns() -> None:
    facts = complete()
    facts.buildkit = Reachability(False, "no TCP answer within 5 s")
    assert [r.check for r in run_checks(facts, EXPECT).missing] == ["buildkit tcp://buildkitd.deploy-mcp-builds:1234"]
    facts.buildkit = None
    assert run_checks(facts, replace(EXPECT, builder="local")).ok


def test_an_api_server_without_a_required_version_fails() -> None:
    facts = complete()
    facts.served_apis -= {"node.k8s.io/v1", "policy/v1"}
    assert {r.check for r in run_checks(facts, EXPECT).missing} == {"api node.k8s.io/v1",
                                                                     "api policy (PodDisruptionBudget)"}


@pytest.mark.parametrize(("perm", "attrs"), [
    (Permission("apps", "deployments/scale", "patch", True),
     {"group": "apps", "resource": "deployments", "subresource": "scale", "verb": "patch"}),
    (Permission("", "namespaces", "create", False), {"group": "", "resource": "namespaces", "verb": "create"}),
])
def test_access_reviews_ask_in_rbac_terms(perm: Permission, attrs: dict[str, str]) -> None:
    review = access_review(perm)
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["spec"] == {"resourceAttributes": attrs}  # no namespace: every namespace


def test_every_worker_permission_is_asked_once() -> None:
    asked = permissions_to_ask(EXPECT)
    assert len(asked) == len(set(asked)) and set(WORKER_PERMISSIONS) <= set(asked)


def test_buildkit_addresses() -> None:
    assert buildkit_endpoint("tcp://buildkitd.deploy-mcp-builds:1234") == ("buildkitd.deploy-mcp-builds", 1234)
    assert buildkit_endpoint("unix:///run/buildkit/buildkitd.sock") is None


def test_expectations_follow_the_settings() -> None:
    settings = load_settings(cluster={"runtime_class": "", "storage_classes": {"fast": "longhorn",
                                                                               "standard": "longhorn"}},
                             build={"builder": "buildkit"}, preflight={"volumes": False})
    expect = expectations(settings)
    assert (expect.runtime_class, expect.storage_classes, expect.builder, expect.volumes) == (
        None, ("longhorn",), "buildkit", False)


def test_the_operator_scope_is_spelled_the_same_in_settings_and_tools() -> None:
    from mcp_server.settings import OPERATOR_SCOPES, load_settings
    from tools.identity import OPERATOR_SCOPE

    assert OPERATOR_SCOPES == (OPERATOR_SCOPE,)
    assert OPERATOR_SCOPE in load_settings().operator.scopes
