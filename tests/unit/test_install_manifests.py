"""The kustomize install (manifests/): every overlay renders, validates and keeps the promises of its docs.

- Every overlay renders with kustomize (tests/support/kustomize.py: the venv's kubectl) and every object
  validates strictly against the newest Kubernetes schemas kubernetes-validate ships; CRD kinds validate
  against the project's CRDs (manifests/storage/crds) or are skipped with the reason (cert-manager's).
- The testbed overlay also validates against the oldest schemas kubernetes-validate ships, uses only API
  versions Kubernetes 1.20 serves, and none of the fields 1.20 would silently drop.
- No overlay declares a Namespace beyond the platform's two (so `kubectl delete -k` never deletes a
  system namespace).
- The server and worker pods: non-root, read-only root filesystem with an emptyDir on /tmp in every
  container, the migrate init step first, HTTP probes on /healthz and /readyz at 8765 / 8766, a grace
  period for in-flight calls, config from the generated ConfigMap and the operator's Secret (whose database
  URL and secrets key they name, so a pod without them never starts); the server has
  no token (except with components/server-pod-logs), a Service 80 -> http and a TLS Ingress whose host is
  the public URL's; both have PDBs; the NetworkPolicies admit the server only from the edge.
- Pod placement: every pod template of each overlay matches the table in manifests/README.md.
- Settings: every DEPLOY_MCP_ name in the example files and the rendered ConfigMaps is a real setting, and
  each overlay's config (with example secrets) loads; the k3s overlays set every setting the example does.
- No overlay generates (and so renames) the Secrets the worker's database dump and restore jobs read by name.
- The wrapper the testbed cluster test writes (write_testbed_install) renders with its values, its Secrets
  under their plain names.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions, latest_version

from mcp_server.settings import Settings
from tests.support.kustomize import MANIFESTS, OVERLAYS, render, write_testbed_install
from workflows.render.database import BACKUP_SECRET_KEYS

LATEST = latest_version()
OLDEST = all_versions()[0]
K3S_OVERLAYS = ["k3s-pools", "k3s-single-node"]
ALL_OVERLAYS = [*K3S_OVERLAYS, "testbed"]
PLATFORM_NAMESPACES = {"deploy-mcp-system", "deploy-mcp-builds"}
IMAGE = "ghcr.io/deploy-mcp/deploy-mcp"
# CRD kinds with no schema in kubernetes-validate and none in this repository
SKIPPED_CRDS = {("cert-manager.io/v1", "ClusterIssuer"): "cert-manager's CRD is installed by cert-manager"}
# group/versions Kubernetes 1.20 serves, for the kinds an install uses (`kubectl api-versions` on the testbed)
SERVED_BY_1_20 = {
    "v1", "apps/v1", "batch/v1", "policy/v1beta1", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
    "node.k8s.io/v1", "storage.k8s.io/v1", "apiextensions.k8s.io/v1",
}
# fields of these kinds that came after 1.20, which a 1.20 API server prunes without a word
NEWER_THAN_1_20 = {"endPort", "appArmorProfile", "grpc", "os", "internalTrafficPolicy", "unhealthyPodEvictionPolicy",
                   "podFailurePolicy", "minReadySeconds"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")




_RENDERED: dict[str, list[dict[str, Any]]] = {}


def _objects(name: str) -> list[dict[str, Any]]:
    if name not in _RENDERED:
        _RENDERED[name] = render(OVERLAYS / name)
    return _RENDERED[name]


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in (MANIFESTS / "storage" / "crds").glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                out[key] = version["schema"]["openAPIV3Schema"]
    return out


def _validate(obj: dict[str, Any], version: str) -> None:
    key = (obj["apiVersion"], obj["kind"])
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except SchemaNotFoundError:
        crds = _crd_schemas()
        if key in crds:
            jsonschema.validate({k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")},
                                crds[key])
        elif key not in SKIPPED_CRDS:
            raise


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_every_object_validates_against_the_newest_schemas(name: str) -> None:
    objs = _objects(name)
    assert len(objs) > 10
    for obj in objs:
        if obj["apiVersion"] == "policy/v1beta1":  # testbed only: gone from the newest schemas (checked below)
            continue
        _validate(obj, LATEST)


def _as_policy_v1(obj: dict[str, Any]) -> dict[str, Any]:
    # kubernetes-validate's oldest schemas (1.25) no longer have policy/v1beta1; its PDB spec fields are the
    # same as policy/v1's, which validates them
    return {**obj, "apiVersion": "policy/v1"} if obj["apiVersion"] == "policy/v1beta1" else obj


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def test_the_testbed_overlay_fits_kubernetes_1_20() -> None:
    objs = _objects("testbed")
    for obj in objs:
        _validate(_as_policy_v1(obj), OLDEST)
        assert obj["apiVersion"] in SERVED_BY_1_20, f"{obj['kind']} {obj['metadata']['name']}: {obj['apiVersion']}"
        newer = NEWER_THAN_1_20 & set(_keys(obj.get("spec")))
        assert not newer, f"{obj['kind']} {obj['metadata']['name']} uses {newer}, which 1.20 drops"
    assert {o["metadata"]["name"] for o in objs if o["kind"] == "PodDisruptionBudget"} == {
        "deploy-mcp-server", "deploy-mcp-worker"}


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_only_the_platform_namespaces_are_declared(name: str) -> None:
    declared = {o["metadata"]["name"] for o in _objects(name) if o["kind"] == "Namespace"}
    assert declared <= PLATFORM_NAMESPACES
    assert "deploy-mcp-system" in declared
    for obj in _objects(name):
        ns = obj["metadata"].get("namespace")
        assert ns is None or ns in PLATFORM_NAMESPACES, f"{obj['kind']} {obj['metadata']['name']} in {ns}"


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == port))


@pytest.mark.parametrize("name", ALL_OVERLAYS)
@pytest.mark.parametrize(("workload", "port"), [("deploy-mcp-server", 8765), ("deploy-mcp-worker", 8766)])
def test_platform_pods_are_locked_down_probed_and_migrate_first(name: str, workload: str, port: int) -> None:
    objs = _objects(name)
    deployment = _one(objs, "Deployment", workload)
    pod = _pod(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["terminationGracePeriodSeconds"] >= 60
    tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert tmp and "emptyDir" in tmp[0]
    for c in _containers(pod):
        assert c["image"].rsplit(":", 1)[0] in (IMAGE, "127.0.0.1:5000/deploy-mcp"), c["image"]
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        refs = [next(iter(e.values()))["name"] for e in c["envFrom"]]
        config = next(r for r in refs if r.startswith("deploy-mcp-config"))
        assert _one(objs, "ConfigMap", config)  # the generated name, hash suffix and all
        assert any(r.startswith("deploy-mcp-secrets") for r in refs)
        required = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
        for key in ("DATABASE_URL", "DEPLOY_MCP_SECRETS_KEY"):  # a pod without them never starts
            assert required[key]["key"] == key and required[key]["name"].startswith("deploy-mcp-secrets")
            assert not required[key].get("optional")
    assert [c["name"] for c in pod["initContainers"]] == ["migrate"]
    assert pod["initContainers"][0]["args"] == ["migrate"]
    main = pod["containers"][0]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = main[probe]["httpGet"]
        assert get["path"] == path and _port(main, get["port"]) == port, (probe, get)
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    pdb = _one(objs, "PodDisruptionBudget", workload)
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_image_tags_follow_the_package_version_or_the_testbed_tag(name: str) -> None:
    version = re.search(r'^version = "([^"]+)"', (MANIFESTS.parent / "pyproject.toml").read_text(), re.M)
    assert version
    want = f"{IMAGE}:{version[1]}" if name != "testbed" else "127.0.0.1:5000/deploy-mcp:test"
    images = {c["image"] for o in _objects(name) if o["kind"] == "Deployment"
              and o["metadata"]["name"].startswith("deploy-mcp-") for c in _containers(_pod(o))}
    assert images == {want}


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_the_server_is_reached_through_its_service_and_only_from_the_edge(name: str) -> None:
    objs = _objects(name)
    server = _pod(_one(objs, "Deployment", "deploy-mcp-server"))
    sa = _one(objs, "ServiceAccount", "deploy-mcp-server")
    with_pod_logs = name == "testbed"  # the testbed has no Loki: components/server-pod-logs
    assert server["automountServiceAccountToken"] is with_pod_logs
    assert sa["automountServiceAccountToken"] is with_pod_logs
    assert server["serviceAccountName"] == "deploy-mcp-server"
    svc = _one(objs, "Service", "deploy-mcp-server")
    assert svc["spec"]["selector"] == _one(objs, "Deployment", "deploy-mcp-server")["spec"]["selector"]["matchLabels"]
    (port,) = svc["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 80, "http")
    assert _port(server["containers"][0], "http") == 8765
    policy = _one(objs, "NetworkPolicy", "deploy-mcp-server")
    assert policy["spec"]["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {"deploy-mcp/role": "edge"}}}],
                                          "ports": [{"port": 8765, "protocol": "TCP"}]}]
    worker_policy = _one(objs, "NetworkPolicy", "deploy-mcp-worker")
    assert worker_policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}],
                                                 "ports": [{"port": 8766, "protocol": "TCP"}]}]
    dns = worker_policy["spec"]["egress"][0]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert {p["port"] for p in worker_policy["spec"]["egress"][1]["ports"]} >= {5432, 7233, 443, 6443}


@pytest.mark.parametrize("name", K3S_OVERLAYS)
def test_the_ingress_serves_the_public_url_over_tls(name: str) -> None:
    objs = _objects(name)
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("deploy-mcp-config"))
    host = config["data"]["DEPLOY_MCP_HTTP__PUBLIC_URL"].split("/")[2]
    ingress = _one(objs, "Ingress", "deploy-mcp-server")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == _one(
        objs, "ClusterIssuer", "letsencrypt")["metadata"]["name"]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "deploy-mcp-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    assert rule["http"]["paths"][0]["path"] == config["data"]["DEPLOY_MCP_HTTP__PATH"]
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "deploy-mcp-server", "port": {"name": "http"}}}


# --- placement: the table of manifests/README.md -------------------------------------------------------------


def _promised() -> dict[tuple[str, str], tuple[str, str]]:
    """(overlay, pod) -> (nodeSelector, tolerations) as manifests/README.md's table states them."""
    out = {}
    for line in (MANIFESTS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ALL_OVERLAYS:
            for pod in cells[1].split(","):
                out[(cells[0], pod.strip())] = (cells[2], cells[3])
    return out


def _selector_of(pod: dict[str, Any]) -> str:
    selector = pod.get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "-"


def _tolerations_of(pod: dict[str, Any]) -> str:
    tolerations = pod.get("tolerations") or []
    if tolerations == [{"operator": "Exists"}]:
        return "all"
    for t in tolerations:
        assert t.get("operator") == "Equal" and t.get("effect") == "NoSchedule", t
    return ",".join(sorted(f"{t['key']}={t['value']}" for t in tolerations)) or "-"


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_every_pod_runs_where_the_docs_say(name: str) -> None:
    promised = {pod: where for (overlay, pod), where in _promised().items() if overlay == name}
    workloads = {o["metadata"]["name"]: _pod(o) for o in _objects(name) if o["kind"] in WORKLOADS}
    assert set(workloads) == set(promised), "manifests/README.md's placement table and the overlay differ"
    for workload, pod in workloads.items():
        assert (_selector_of(pod), _tolerations_of(pod)) == promised[workload], workload


@pytest.mark.parametrize("name", K3S_OVERLAYS)
def test_customer_pods_go_to_the_run_pool_and_builds_follow_the_overlay(name: str) -> None:
    objs = _objects(name)
    gvisor = _one(objs, "RuntimeClass", "gvisor")
    assert gvisor["handler"] == "runsc"
    assert gvisor["scheduling"]["nodeSelector"] == {"pool": "run"}
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("deploy-mcp-config"))
    build_pool = config["data"].get("DEPLOY_MCP_BUILD__POOL", "build")
    buildkitd = _pod(_one(objs, "Deployment", "buildkitd"))
    assert buildkitd["nodeSelector"] == {"pool": build_pool}  # the Jobs and their daemon share the pool
    assert build_pool == ("run" if name == "k3s-single-node" else "build")


def _tmp_overlay(tmp_path: Path, components: list[str]) -> list[dict[str, Any]]:
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS / "base", tmp_path)],
        "components": [os.path.relpath(MANIFESTS / "components" / c, tmp_path) for c in components]}))
    return render(tmp_path)


def test_the_small_install_runs_on_untainted_nodes_and_validates(tmp_path: Path) -> None:
    objs = _tmp_overlay(tmp_path, ["small-install"])
    for obj in objs:
        _validate(obj, LATEST)
    for name in ("postgres", "temporal"):
        kind = "StatefulSet" if name == "postgres" else "Deployment"
        pod = _pod(_one(objs, kind, name))
        assert _selector_of(pod) == "-" and _tolerations_of(pod) == "-"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
    claim = _one(objs, "StatefulSet", "postgres")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"]


# --- settings ------------------------------------------------------------------------------------------------


def _env_file(path: Path, *, commented: bool = False) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if commented and line.startswith("# DEPLOY_MCP_"):
            line = line[2:]
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _check_name(key: str) -> None:
    """A DEPLOY_MCP_ name is a real setting: a top-level field, or <group>__<field> of a group."""
    assert key.startswith("DEPLOY_MCP_"), key
    group, sep, field = key.removeprefix("DEPLOY_MCP_").lower().partition("__")
    assert group in Settings.model_fields, f"{key}: no settings group {group!r}"
    if sep:
        model = Settings.model_fields[group].annotation
        assert model is not None and field in model.model_fields, f"{key}: group {group} has no field {field!r}"


OTHER_NAMES = {"DATABASE_URL", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}


def test_every_name_in_the_example_files_is_a_setting() -> None:
    example = _env_file(MANIFESTS / "base" / "config.example.env", commented=True)
    secrets = _env_file(MANIFESTS / "base" / "secrets.example.env", commented=True)
    assert len(example) > 15
    for key in [*example, *secrets, *_env_file(MANIFESTS / "base" / "config.env")]:
        if key not in OTHER_NAMES:
            _check_name(key)
    assert set(secrets) == {"DATABASE_URL", "DEPLOY_MCP_SECRETS_KEY", "DEPLOY_MCP_HARBOR__PASSWORD",
                            "DEPLOY_MCP_DNS__POWERDNS_API_KEY"}


@pytest.mark.parametrize("name", K3S_OVERLAYS)
def test_the_k3s_overlays_set_every_setting_the_example_does(name: str) -> None:
    example = set(_env_file(MANIFESTS / "base" / "config.example.env"))
    assert set(_env_file(OVERLAYS / name / "config.env")) >= example


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_each_overlays_config_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(o for o in _objects(name) if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].startswith("deploy-mcp-config"))["data"]
    for key in list(os.environ):
        if key.startswith("DEPLOY_MCP_") or key in ("DATABASE_URL", "KUBECONFIG"):
            monkeypatch.delenv(key)
    secrets = _env_file(MANIFESTS / "base" / "secrets.example.env")
    if "DEPLOY_MCP_HARBOR__URL" not in config:
        secrets.pop("DEPLOY_MCP_HARBOR__PASSWORD")
    for key, value in {**config, **secrets}.items():
        if key.startswith("DEPLOY_MCP_"):
            _check_name(key)
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.http.host == "0.0.0.0" and settings.http.port == 8765  # noqa: S104
    assert settings.build.builder == "buildkit"
    assert settings.temporal.address and settings.database.url
    assert settings.state_dir == Path("/tmp/deploy-mcp")


# --- the testbed cluster test's wrapper ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_OVERLAYS)
def test_what_the_database_jobs_read_is_never_renamed_by_kustomize(name: str) -> None:
    """The dump and restore jobs the worker renders name their Secrets as they are; a generated object of that
    name (with kustomize's hash) would leave them waiting for one that does not exist."""
    generated = [o["metadata"]["name"] for o in _objects(name) if o["kind"] in ("ConfigMap", "Secret")]
    for key in BACKUP_SECRET_KEYS:
        assert not [g for g in generated if g.startswith(f"{key}-")], (key, generated)
    assert "deploy-mcp-config" not in BACKUP_SECRET_KEYS  # generated with a hash by base/ (it rolls the pods)


def test_the_testbed_wrapper_renders_with_the_values_a_run_fills(tmp_path: Path) -> None:
    write_testbed_install(tmp_path / "install", image_tag="t2",
                          config={"DEPLOY_MCP_TEMPORAL__ADDRESS": "10.250.0.1:17233",
                                  "DEPLOY_MCP_HTTP__PUBLIC_URL": "http://127.0.0.1:30765/mcp"},
                          secrets={"DATABASE_URL": "postgresql://u:p@10.250.0.1:54329/deploy_mcp",
                                   "DEPLOY_MCP_SECRETS_KEY": "not-a-real-key"},
                          backup={"DEPLOY_MCP_BACKUP__TARGET": "s3://dumps/testbed"})
    objs = render(tmp_path / "install")
    config = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("deploy-mcp-config"))
    assert config["data"]["DEPLOY_MCP_TEMPORAL__ADDRESS"] == "10.250.0.1:17233"
    assert config["data"]["DEPLOY_MCP_CLUSTER__RUNTIME_CLASS"] == "runc"  # the overlay's own values stay
    # by the names the worker's database jobs read, as the operator's kubectl would create them
    assert sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Secret") == sorted(BACKUP_SECRET_KEYS)
    secret = _one(objs, "Secret", "deploy-mcp-secrets")
    backup = _one(objs, "Secret", "deploy-mcp-backup")
    assert base64.b64decode(backup["data"]["DEPLOY_MCP_BACKUP__TARGET"]) == b"s3://dumps/testbed"
    for workload in ("deploy-mcp-server", "deploy-mcp-worker"):
        pod = _pod(_one(objs, "Deployment", workload))
        for c in _containers(pod):
            assert c["image"] == "127.0.0.1:5000/deploy-mcp:t2"
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in c["envFrom"]
            assert {"configMapRef": {"name": config["metadata"]["name"]}} in c["envFrom"]
            assert {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"]} == {secret["metadata"]["name"]}
    for obj in objs:
        _validate(_as_policy_v1(obj), OLDEST)
