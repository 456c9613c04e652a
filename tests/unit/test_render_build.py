"""The production build Job and the build's Secrets (workflows/render/build_job.py).

- Every rendered object validates (strict: no unknown fields) against the newest Kubernetes schemas
  kubernetes-validate ships, for Railpack and Dockerfile builds, token and SSH credentials, with and without
  build secrets, registry and BuildKit TLS Secrets.
- The Job runs once (backoffLimit 0) on the build pool (nodeSelector + toleration), within its deadline and
  resource limits, non-root, without a service-account token, with an emptyDir workspace; its labels say who
  the build is for and stream=build.
- No secret value is ever in the Job: the token and the build secrets arrive through secretKeyRef only.
- Railpack builds run `railpack prepare` and buildctl with the gateway frontend, a per-tenant cache key and the
  registry cache; Dockerfile builds use dockerfile.v0 with the Dockerfile's directory and name.
- BuildSpec refuses what would break the Job or let a build escape its inputs.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version
from pydantic import ValidationError

from workflows.domain.build_spec import BuildImages, BuildSpec
from workflows.domain.credentials import GitCredentials, RobotCredentials
from workflows.domain.labels import (
    LABEL_APP,
    LABEL_BUILD_ID,
    LABEL_COMMIT,
    LABEL_DEPLOYMENT_ID,
    LABEL_PROJECT,
    LABEL_STREAM,
    LABEL_TENANT,
)
from workflows.render.build_job import (
    BUILD_SCRIPT,
    CLONE_SCRIPT,
    build_job,
    buildctl_args,
    digest_from_log,
    git_secret_body,
)
from workflows.render.pull_secret import dockerconfigjson, imagepull_secret

LATEST = latest_version()
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghs_render0test0TOKEN0value0123456789"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAArenderTESTkeyMATERIAL0123456789\n-----END OPENSSH PRIVATE KEY-----\n"
IMAGES = BuildImages(
    clone="alpine/git:v2.45.2",
    railpack="ghcr.io/example/railpack-cli:0.9.0",
    buildctl="moby/buildkit:v0.20.0-rootless",
    railpack_frontend="ghcr.io/railwayapp/railpack-frontend:v0.9.0",
)


def _spec(**changes: Any) -> BuildSpec:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "project": "shop",
        "app": "web",
        "build_id": "b-7f3a9c",
        "namespace": "deploy-mcp-builds",
        "git_url": "https://github.com/acme/shop.git",
        "commit_sha": SHA,
        "builder": "railpack",
        "image": f"harbor.example.com/acme/web:{SHA}",
        "buildkit_addr": "tcp://buildkitd.deploy-mcp-builds:1234",
        "cache_ref": "harbor.example.com/acme/cache:buildcache",
        "git_secret": "build-b-7f3a9c-git",
        "images": IMAGES,
    }
    fields.update(changes)
    return BuildSpec(**fields)


SPECS: dict[str, BuildSpec] = {
    "railpack-token": _spec(),
    "railpack-public-repo": _spec(git_secret=None),
    "railpack-secrets": _spec(
        build_secrets_secret="web-build-secrets",
        build_secret_names=("SENTRY_AUTH_TOKEN", "NPM_TOKEN"),
        registry_secret="acme-registry-push",
        buildkit_tls_secret="buildkit-client-tls",
        deployment_id="dep-42",
        subdir="services/web",
    ),
    "dockerfile-ssh": _spec(
        builder="dockerfile",
        git_url="git@github.com:acme/shop.git",
        git_auth="ssh",
        subdir="web",
        dockerfile="docker/Dockerfile.prod",
        cpu_millicores=4000,
        memory_mib=8192,
        deadline_seconds=3600,
    ),
}


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, LATEST, strict=True)


def _containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return [*pod["initContainers"], *pod["containers"]]


def _by_name(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in _containers(job) if c["name"] == name)


def _args(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_job_validates_strictly(name: str) -> None:
    _validate(build_job(SPECS[name]))


def test_secrets_validate_strictly() -> None:
    _validate(git_secret_body(_spec(), GitCredentials(token=TOKEN)))
    ssh = SPECS["dockerfile-ssh"]
    _validate(git_secret_body(ssh, GitCredentials(ssh_private_key=KEY, ssh_known_hosts="github.com ssh-ed25519 AAAA")))
    _validate(imagepull_secret("harbor.example.com", RobotCredentials("robot$acme+deploy-mcp", "S3cretValue1"),
                               namespace="dm-acme-shop-abc123"))


def test_job_runs_on_the_configured_pool() -> None:
    """One node carrying every pool (manifests/overlays/k3s-single-node) labels it pool=run; builds follow."""
    pod = build_job(_spec().model_copy(update={"pool": "run"}))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "run"}
    assert pod["tolerations"] == [{"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"}]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_job_runs_once_on_the_build_pool_within_its_limits(name: str) -> None:
    spec = SPECS[name]
    job = build_job(spec)
    assert job["metadata"] == {"name": f"build-{spec.build_id}", "namespace": spec.namespace,
                               "labels": job["spec"]["template"]["metadata"]["labels"]}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == spec.deadline_seconds
    assert job["spec"]["ttlSecondsAfterFinished"] == spec.ttl_seconds_after_finished
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"pool": "build"}
    assert pod["tolerations"] == [{"key": "pool", "operator": "Equal", "value": "build", "effect": "NoSchedule"}]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    workspace = next(v for v in pod["volumes"] if v["name"] == "workspace")
    assert workspace == {"name": "workspace", "emptyDir": {"sizeLimit": f"{spec.workspace_mib}Mi"}}
    for container in _containers(job):
        limits = container["resources"]["limits"]
        assert limits == {"cpu": f"{spec.cpu_millicores}m", "memory": f"{spec.memory_mib}Mi"}
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert {"name": "workspace", "mountPath": "/workspace"} in container["volumeMounts"]


def test_labels_say_who_the_build_is_for_and_stream_build() -> None:
    job = build_job(SPECS["railpack-secrets"])
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[LABEL_TENANT] == "acme" and labels[LABEL_PROJECT] == "shop" and labels[LABEL_APP] == "web"
    assert labels[LABEL_BUILD_ID] == "b-7f3a9c" and labels[LABEL_COMMIT] == SHA
    assert labels[LABEL_DEPLOYMENT_ID] == "dep-42"
    assert labels[LABEL_STREAM] == "build"
    assert "deploy-mcp/release" not in labels, "build pods are not release pods (the log agent ships only those)"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_secret_value_in_the_job(name: str) -> None:
    spec = SPECS[name]
    text = json.dumps(build_job(spec))
    assert TOKEN not in text and "renderTESTkey" not in text
    clone = _by_name(build_job(spec), "clone")
    for env in clone["env"]:
        assert "value" in env or set(env["valueFrom"]) == {"secretKeyRef"}
    if spec.git_secret and spec.git_auth == "token":
        token_env = next(e for e in clone["env"] if e["name"] == "GIT_TOKEN")
        assert token_env == {
            "name": "GIT_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.git_secret, "key": "token"}}
        }


def test_token_and_key_reach_only_the_clone_container() -> None:
    job = build_job(_spec())
    for container in _containers(job):
        names = {e["name"] for e in container.get("env", [])}
        assert ("GIT_TOKEN" in names) == (container["name"] == "clone")
    ssh_job = build_job(SPECS["dockerfile-ssh"])
    mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in _containers(ssh_job)}
    assert "git-credentials" in mounts["clone"] and "git-credentials" not in mounts["build"]
    volume = next(v for v in ssh_job["spec"]["template"]["spec"]["volumes"] if v["name"] == "git-credentials")
    assert volume["secret"] == {"secretName": "build-b-7f3a9c-git", "defaultMode": 0o400}
    assert not any(e["name"] == "GIT_TOKEN" for e in _by_name(ssh_job, "clone")["env"])


def test_clone_gets_url_and_sha_from_the_environment() -> None:
    clone = _by_name(build_job(_spec()), "clone")
    env = {e["name"]: e.get("value") for e in clone["env"]}
    assert env["GIT_URL"] == "https://github.com/acme/shop.git" and env["GIT_SHA"] == SHA
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == ""
    assert clone["command"] == ["/bin/sh", "-c", CLONE_SCRIPT]
    assert "$GIT_URL" in CLONE_SCRIPT and "github.com" not in CLONE_SCRIPT, "nothing is spliced into the script"
    assert "protocol.allow=never" in CLONE_SCRIPT and "http.extraHeader" in CLONE_SCRIPT
    assert "fetch -q --depth=1" in CLONE_SCRIPT and "checkout -q --detach" in CLONE_SCRIPT


def test_railpack_build_plans_then_uses_the_gateway_frontend() -> None:
    spec = SPECS["railpack-secrets"]
    job = build_job(spec)
    assert [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]] == ["clone", "plan"]
    plan = _by_name(job, "plan")
    assert plan["command"] == ["railpack"]
    assert plan["args"] == [
        "prepare", "/workspace/src/services/web",
        "--plan-out", "/workspace/plan/railpack-plan.json", "--info-out", "/workspace/plan/railpack-info.json",
        "--env", "SENTRY_AUTH_TOKEN", "--env", "NPM_TOKEN",
    ]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in plan["env"] if "valueFrom" in e} == {
        "SENTRY_AUTH_TOKEN": {"name": "web-build-secrets", "key": "SENTRY_AUTH_TOKEN"},
        "NPM_TOKEN": {"name": "web-build-secrets", "key": "NPM_TOKEN"},
    }
    build = _by_name(job, "build")
    assert build["command"] == ["/bin/sh", "-c", BUILD_SCRIPT, "build"]
    args = build["args"]
    assert args[:4] == ["--addr", "tcp://buildkitd.deploy-mcp-builds:1234", "--tlsdir", "/buildkit-tls"]
    assert args[4:7] == ["build", "--progress", "plain"]
    assert _pairs(args, "--frontend") == ["gateway.v0"]
    assert "source=ghcr.io/railwayapp/railpack-frontend:v0.9.0" in _pairs(args, "--opt")
    assert "cache-key=acme" in _pairs(args, "--opt"), "mount caches are per tenant"
    assert _pairs(args, "--local") == ["context=/workspace/src/services/web", "dockerfile=/workspace/plan"]
    assert _pairs(args, "--output") == [f"type=image,name=harbor.example.com/acme/web:{SHA},push=true"]
    assert _pairs(args, "--export-cache") == ["type=registry,ref=harbor.example.com/acme/cache:buildcache,mode=max"]
    assert _pairs(args, "--import-cache") == ["type=registry,ref=harbor.example.com/acme/cache:buildcache"]
    assert _pairs(args, "--secret") == ["id=SENTRY_AUTH_TOKEN,env=SENTRY_AUTH_TOKEN", "id=NPM_TOKEN,env=NPM_TOKEN"]
    assert _pairs(args, "--metadata-file") == ["/workspace/metadata.json"]
    env = {e["name"]: e for e in build["env"]}
    assert env["DOCKER_CONFIG"]["value"] == "/docker-config"
    assert env["BUILD_SECRET_NAMES"]["value"] == "SENTRY_AUTH_TOKEN NPM_TOKEN" and env["RAILPACK"]["value"] == "1"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["docker-config"]["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    assert {"name": "plan-tmp", "mountPath": "/tmp"} in plan["volumeMounts"], "mise is downloaded to /tmp: on disk"
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory", "the copied SSH key never touches the node's disk"


def test_dockerfile_build_has_no_plan_step_and_names_the_dockerfile() -> None:
    job = build_job(SPECS["dockerfile-ssh"])
    assert [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]] == ["clone"]
    args = _by_name(job, "build")["args"]
    assert _pairs(args, "--frontend") == ["dockerfile.v0"]
    assert _pairs(args, "--local") == ["context=/workspace/src/web", "dockerfile=/workspace/src/web/docker"]
    assert _pairs(args, "--opt") == ["filename=Dockerfile.prod"]
    assert "--tlsdir" not in args and not _pairs(args, "--secret")
    root = buildctl_args(_spec(builder="dockerfile"))
    assert _pairs(root, "--local") == ["context=/workspace/src", "dockerfile=/workspace/src"]
    assert _pairs(root, "--opt") == ["filename=Dockerfile"]


def test_git_secret_bodies() -> None:
    token = git_secret_body(_spec(), GitCredentials(token=TOKEN, username="oauth2"))
    assert token["metadata"]["name"] == "build-b-7f3a9c-git" and token["immutable"] is True
    decoded = {k: base64.b64decode(v).decode() for k, v in token["data"].items()}
    assert decoded == {"token": TOKEN, "username": "oauth2"}
    ssh = git_secret_body(SPECS["dockerfile-ssh"], GitCredentials(ssh_private_key=KEY, ssh_known_hosts="h k"))
    assert {k: base64.b64decode(v).decode() for k, v in ssh["data"].items()} == {
        "ssh-privatekey": KEY, "known_hosts": "h k\n"
    }
    with pytest.raises(ValueError, match="needs a token"):
        git_secret_body(_spec(), GitCredentials(ssh_private_key=KEY))
    with pytest.raises(ValueError, match="names no Secret"):
        git_secret_body(_spec(git_secret=None), GitCredentials(token=TOKEN))


def test_imagepull_secret_is_a_dockerconfigjson() -> None:
    robot = RobotCredentials("robot$acme+deploy-mcp", "S3cretValue1")
    assert "S3cret" not in repr(robot)
    secret = imagepull_secret("harbor.example.com", robot, name="acme-pull", namespace="dm-acme-shop-abc123")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == "acme-pull" and secret["metadata"]["namespace"] == "dm-acme-shop-abc123"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["harbor.example.com"]
    assert entry["username"] == "robot$acme+deploy-mcp" and entry["password"] == "S3cretValue1"
    assert base64.b64decode(entry["auth"]).decode() == "robot$acme+deploy-mcp:S3cretValue1"
    assert json.loads(dockerconfigjson("h:5000", robot))["auths"].keys() == {"h:5000"}


def test_digest_is_read_from_the_last_marker_line() -> None:
    digest = "sha256:" + "a" * 64
    log = f"#1 building\nDEPLOY_MCP_DIGEST=sha256:{'b' * 64}\nmore\nDEPLOY_MCP_DIGEST={digest}\n"
    assert digest_from_log(log) == digest
    assert digest_from_log("DEPLOY_MCP_DIGEST=sha256:short\n") is None
    assert digest_from_log("") is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"git_url": "http://github.com/acme/shop.git"}, "plain http://"),
        ({"git_url": "https://u:p@github.com/acme/shop.git"}, "set_git_credentials"),
        ({"commit_sha": "main"}, "40-character"),
        ({"commit_sha": SHA.upper()}, "40-character"),
        ({"subdir": "../other"}, "relative path inside the repository"),
        ({"subdir": "a/../../b"}, "relative path inside the repository"),
        ({"dockerfile": "-f"}, "relative path inside the repository"),
        ({"image": f"harbor.example.com/acme/web@sha256:{'a' * 64}"}, "must name a tag"),
        ({"build_id": "B_1"}, "DNS label"),
        ({"build_id": "b" * 60}, "at most 57"),
        ({"tenant": "Acme"}, "lowercase"),
        ({"buildkit_addr": "tcp://buildkitd:1234; rm -rf /"}, "tcp://host:port"),
        ({"build_secret_names": ("GIT_TOKEN",), "build_secrets_secret": "s"}, "reserved"),
        ({"build_secret_names": ("A B",), "build_secrets_secret": "s"}, "environment variable"),
        ({"build_secret_names": ("A", "A"), "build_secrets_secret": "s"}, "unique"),
        ({"build_secret_names": ("A",)}, "need build_secrets_secret"),
        ({"git_auth": "ssh", "git_secret": None}, "needs git_secret"),
        ({"deadline_seconds": 10}, "greater than or equal to 60"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_spec_refuses_what_would_break_the_job(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        _spec(**changes)
    assert words in str(info.value)


def test_subdir_slashes_are_normalised() -> None:
    assert _spec(subdir="/services/web/").subdir == "services/web"
    assert _spec(subdir="/").subdir == ""
    assert _spec(subdir="/").context_dir == "/workspace/src"
