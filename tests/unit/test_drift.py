"""The reconciler's decisions over rendered and live objects (`workflows.domain.drift`), without a cluster.

- an object as the API server returns it (defaults filled in, quantities rewritten, other managers' labels,
  annotations and list items) holds no drift;
- a missing object, one being deleted, a changed replica count, image, Service selector, namespace label or
  quota is drift, named by its field;
- Secrets and claims count by presence only (their data is never compared);
- which pods are the serving release's Ready ones, whether the Service sends traffic to them, which objects
  no recorded app owns, and how long the loop waits after failed passes.
"""

from __future__ import annotations

import copy
from typing import Any

from workflows.domain.drift import differences, object_drift, orphans, ready_pods, service_points_at
from workflows.domain.labels import LABEL_APP, LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY
from workflows.domain.reconcile_contract import Observation, next_pass_seconds
from workflows.domain.specs import AppConfig, ClusterCaps, Guardrails, ReleaseSpec
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_pdb, release_secret

SPEC = ReleaseSpec(tenant="acme", project="shop", app="web", namespace="dm-acme-shop-1234", seq=2,
                   deployment_id="d-1", image="registry.example/acme/web@sha256:" + "a" * 64,
                   config=AppConfig(port=8080, replicas=2), runtime_class="gvisor")
CAPS = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
CANONICAL = {"1000m": "1", "16384Mi": "16Gi", "8000m": "8", "200Gi": "200Gi", "256Mi": "256Mi", "100m": "100m",
             "400m": "400m", "128Mi": "128Mi", "16000m": "16", "65536Mi": "64Gi", "250m": "250m"}


def as_served(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the API server hands it back: metadata it adds, defaults in containers and ports, quantities
    in canonical form, a label and a list item another actor added."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return CANONICAL.get(node, node) if isinstance(node, str) else node

    live: dict[str, Any] = walk(copy.deepcopy(obj))
    md = live["metadata"]
    md.update(uid="0b1c", resourceVersion="42", creationTimestamp="2026-12-01T10:00:00Z",
              managedFields=[{"manager": "deploy-mcp"}], annotations={"someone/else": "x"})
    md["labels"]["kubernetes.io/metadata.name" if live["kind"] == "Namespace" else "team"] = "y"
    if live["kind"] == "Deployment":
        pod = live["spec"]["template"]["spec"]
        pod.update(dnsPolicy="ClusterFirst", restartPolicy="Always", schedulerName="default-scheduler")
        pod["containers"][0].update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
        pod["tolerations"].append({"key": "injected", "operator": "Exists"})
        live["status"] = {"readyReplicas": 2}
    if live["kind"] == "Service":
        live["spec"].update(clusterIP="10.43.0.7", sessionAffinity="None")
    return live


def test_objects_as_the_api_server_returns_them_hold_no_drift() -> None:
    rendered = [*namespace_objects("acme", "shop", SPEC.namespace, Guardrails(), CAPS), release_deployment(SPEC),
                release_pdb(SPEC, CAPS), app_service(SPEC.namespace, "acme", "shop", "web", "web-r2"),
                app_ingress(SPEC.namespace, "acme", "shop", "web", "web-shop-acme.apps.example", None, None)]
    for obj in rendered:
        assert obj is not None
        assert object_drift(obj, as_served(obj)) is None, obj["kind"]


def test_a_missing_or_terminating_object_is_drift() -> None:
    dep = release_deployment(SPEC)
    assert object_drift(dep, None) == f"Deployment/{SPEC.namespace}/web-r2 is missing"
    ns = namespace_objects("acme", "shop", SPEC.namespace, Guardrails(), CAPS)[0]
    gone = as_served(ns)
    gone["metadata"]["deletionTimestamp"] = "2026-12-01T10:05:00Z"
    assert object_drift(ns, gone) == f"Namespace/{SPEC.namespace} is being deleted"


def test_replicas_image_and_selector_changed_by_hand_are_named() -> None:
    dep = release_deployment(SPEC)
    scaled = as_served(dep)
    scaled["spec"]["replicas"] = 0
    assert object_drift(dep, scaled) == f"Deployment/{SPEC.namespace}/web-r2: spec.replicas is 0, want 2"
    edited = as_served(dep)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    why = object_drift(dep, edited)
    assert why is not None and "spec.template.spec.containers[app].image is 'nginx:latest'" in why
    svc = app_service(SPEC.namespace, "acme", "shop", "web", "web-r2")
    moved = as_served(svc)
    moved["spec"]["selector"][LABEL_RELEASE] = "web-r1"
    assert object_drift(svc, moved) == (f"Service/{SPEC.namespace}/web: spec.selector.{LABEL_RELEASE} is 'web-r1', "
                                        "want 'web-r2'")


def test_guardrails_changed_by_hand_are_drift() -> None:
    ns, quota, *_ = namespace_objects("acme", "shop", SPEC.namespace, Guardrails(), CAPS)
    relaxed = as_served(ns)
    relaxed["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    assert "pod-security.kubernetes.io/enforce is 'privileged', want 'restricted'" in str(object_drift(ns, relaxed))
    bigger = as_served(quota)
    bigger["spec"]["hard"]["requests.cpu"] = "64"
    assert "spec.hard.requests.cpu is '64', want '8000m'" in str(object_drift(quota, bigger))
    bigger["spec"]["hard"]["requests.cpu"] = "8"  # the same quantity, written differently
    assert object_drift(quota, bigger) is None


def test_a_removed_list_item_is_drift_an_added_one_is_not() -> None:
    dep = release_deployment(SPEC)
    live = as_served(dep)
    live["spec"]["template"]["spec"]["tolerations"] = live["spec"]["template"]["spec"]["tolerations"][1:]
    why = object_drift(dep, live)
    assert why is not None and "spec.template.spec.tolerations[0]" in why and "is missing" in why
    assert differences({"a": [1, 2]}, {"a": [2, 1, 3]}) == []  # order and extra items are not the platform's


def test_secrets_count_by_presence_only() -> None:
    secret = release_secret(SPEC, {"TOKEN": "s3cret"})
    other = as_served(secret)
    other["data"] = {"TOKEN": "b3RoZXI="}
    assert object_drift(secret, other) is None
    assert object_drift(secret, None) == f"Secret/{SPEC.namespace}/web-r2-env is missing"


def _pod(name: str, release: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "labels": {LABEL_APP: "web", LABEL_RELEASE: release}}
    if deleting:
        md["deletionTimestamp"] = "2026-12-01T10:05:00Z"
    return {"metadata": md, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _endpoints(*pods: str) -> dict[str, Any]:
    return {"subsets": [{"addresses": [{"ip": "10.42.0.9", "targetRef": {"kind": "Pod", "name": p}} for p in pods]}]}


def test_ready_pods_of_the_serving_release_and_where_the_service_points() -> None:
    pods = [_pod("web-r2-a", "web-r2", True), _pod("web-r2-b", "web-r2", False),
            _pod("web-r2-c", "web-r2", True, deleting=True), _pod("web-r1-a", "web-r1", True)]
    ready = ready_pods(pods, "web-r2")
    assert ready == ["web-r2-a"]
    svc = app_service(SPEC.namespace, "acme", "shop", "web", "web-r2")
    assert service_points_at(svc, _endpoints("web-r2-a"), "web", "web-r2", ready)
    assert not service_points_at(svc, _endpoints(), "web", "web-r2", ready)  # no endpoints: no traffic
    assert not service_points_at(svc, _endpoints("web-r1-a"), "web", "web-r2", ready)
    assert not service_points_at(app_service(SPEC.namespace, "acme", "shop", "web", "web-r1"),
                                 _endpoints("web-r2-a"), "web", "web-r2", ready)
    assert not service_points_at(None, None, "web", "web-r2", ready)


def test_objects_no_recorded_app_owns_are_orphans() -> None:
    def obj(kind: str, ns: str, name: str, app: str | None) -> dict[str, Any]:
        labels = {LABEL_MANAGED_BY: MANAGED_BY} | ({LABEL_APP: app} if app else {})
        return {"kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels}}

    found = [obj("Deployment", "ns1", "web-r1", "web"), obj("Service", "ns1", "web", "web"),
             obj("Deployment", "ns1", "old-r3", "old"), obj("Service", "ns2", "web", "web"),
             obj("Deployment", "ns1", "buildkitd", None)]
    assert orphans(found, {("ns1", "web")}) == ["Deployment/ns1/old-r3", "Service/ns2/web"]


def test_the_wait_after_failed_passes_doubles_up_to_the_ceiling() -> None:
    assert next_pass_seconds(30, 300, 0) == 30
    assert [next_pass_seconds(30, 300, n) for n in (1, 2, 3, 4, 50)] == [60, 120, 240, 300, 300]
    assert next_pass_seconds(5, 1, 3) == 5  # a ceiling below the period never shortens it


def test_the_reason_an_observation_gives() -> None:
    base = {"app_id": "00000000-0000-0000-0000-000000000001", "release": "web-r2", "desired_replicas": 2}
    healthy = Observation.model_validate(base | {"ready_replicas": 2, "serving_ready": True,
                                                 "service_points_at_serving": True})
    assert healthy.healthy and healthy.reason() is None
    assert Observation.model_validate(base | {"ready_replicas": 1}).reason() == "web-r2: 1/2 replicas Ready"
    drifted = healthy.model_copy(update={"drift": ["Deployment/ns/web-r2 is missing"], "repaired": ["x"]})
    assert drifted.reason() == "drift found (re-applied): Deployment/ns/web-r2 is missing"
    assert Observation.model_validate(base | {"release": None}).reason() == "no release is serving"
    assert "K8sForbidden" in str(healthy.model_copy(update={"error": "K8sForbidden: get namespaces"}).reason())
    assert not Observation.model_validate(base | {"serving_ready": True}).healthy


def test_zero_values_the_api_server_omits_are_no_drift() -> None:
    """Go's `omitempty`: a probe's `initialDelaySeconds: 0` and a mount's `readOnly: false` come back absent."""
    spec = SPEC.model_copy(update={"config": AppConfig.model_validate({
        "port": 8080, "mounts": [{"volume": "data", "claim": "data", "mount_path": "/data"}]})})
    dep = release_deployment(spec)
    live = as_served(dep)
    pod = live["spec"]["template"]["spec"]
    for probe in ("readinessProbe", "livenessProbe"):
        if pod["containers"][0][probe]["initialDelaySeconds"] == 0:
            del pod["containers"][0][probe]["initialDelaySeconds"]
    for mount in pod["containers"][0]["volumeMounts"]:
        if mount.get("readOnly") is False:
            del mount["readOnly"]
    for volume in pod["volumes"]:
        volume.get("persistentVolumeClaim", {}).pop("readOnly", None)
    assert pod["containers"][0]["readinessProbe"].get("initialDelaySeconds") is None
    assert object_drift(dep, live) is None
    assert differences({"replicas": 2}, {}) == ["replicas is missing"]
