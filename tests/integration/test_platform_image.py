"""The platform's image, built for real with buildah on the self-built Debian base (cached in $TESTBED_CACHE),
then run without a container engine (`buildah run --isolation chroot`): uid 10001, `deploy-mcp` as entrypoint,
git and the CA bundle present, the package importable, no pip and no compiler left; and pushed over plain
http to a real loopback registry (Debian's docker-registry) the way a test pushes it to the testbed's.
Warm caches (image unchanged): ~1 min, most of it the push and the container's vfs copy."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mcp_server.devenv.buildah import buildah, buildah_argv, buildah_available, default_cache
from mcp_server.devenv.images import OCI_MANIFEST, docker_registry
from mcp_server.devenv.platform_image import build_platform_image, package_version, push_image

pytestmark = [
    pytest.mark.timeout(1800),  # cold: debootstrap + PyPI, several minutes; warm: seconds
    pytest.mark.skipif(buildah_available() is not None, reason=f"{buildah_available()} (CI runs as root with it)"),
]
TAG = "localhost/deploy-mcp-test:image"


@pytest.fixture(scope="module")
def cache() -> Path:
    return default_cache()  # the testbed's buildah storage: the base and the layers stay warm across runs


@pytest.fixture(scope="module")
def image(cache: Path) -> str:
    return build_platform_image(cache, TAG)


@pytest.fixture(scope="module")
def container(cache: Path, image: str) -> Iterator[str]:
    ctr = buildah(cache, "buildah from", "from", "--pull-never", image).strip()
    yield ctr
    buildah(cache, "buildah rm", "rm", ctr, check=False)


def image_id(cache: Path, ref: str) -> str:
    return buildah(cache, "inspect", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref).strip()


def run_in(cache: Path, ctr: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`argv` in the container as its configured user (10001), environment and working directory."""
    return subprocess.run(
        [*buildah_argv(cache), "run", "--isolation", "chroot", ctr, "--", *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def ok(cache: Path, ctr: str, *argv: str) -> str:
    proc = run_in(cache, ctr, *argv)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def test_config_entrypoint_user_env_labels(cache: Path, image: str) -> None:
    doc = json.loads(buildah(cache, "inspect", "inspect", "--type", "image", image))
    config = doc["OCIv1"]["config"]
    assert config["Entrypoint"] == ["deploy-mcp"]
    assert config["Cmd"] == ["serve", "--transport", "http", "--host", "0.0.0.0"]  # noqa: S104
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/tmp"
    assert {"HOME=/tmp", "TMPDIR=/tmp"} <= set(config["Env"])
    assert config["Labels"]["org.opencontainers.image.version"] == package_version()
    assert config["Labels"]["org.opencontainers.image.source"].startswith("https://")
    # the ghcr.io name with the package version is tagged beside the requested tag, on the same image
    assert image_id(cache, f"ghcr.io/deploy-mcp/deploy-mcp:{package_version()}") == image_id(cache, image)


def test_runs_as_10001_with_home_on_tmp(cache: Path, container: str) -> None:
    assert ok(cache, container, "id", "-u").strip() == "10001"
    assert ok(cache, container, "id", "-g").strip() == "10001"
    assert ok(cache, container, "sh", "-c", 'echo "$HOME $TMPDIR $(pwd)"').split() == ["/tmp", "/tmp", "/tmp"]


def test_entrypoint_commands_answer(cache: Path, container: str) -> None:
    assert "serve" in ok(cache, container, "deploy-mcp", "--help")
    assert "migrate" in ok(cache, container, "deploy-mcp", "migrate", "--help")
    ok(cache, container, "python3", "-c", "import mcp_server.wiring, workflows.activities.deploy")


def test_git_works_as_the_unprivileged_user(cache: Path, container: str) -> None:
    assert ok(cache, container, "git", "--version").startswith("git version")
    script = (
        "set -e; git init -q /tmp/r; "
        "git -C /tmp/r -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m x; "
        "git ls-remote /tmp/r; git clone -q /tmp/r /tmp/c; git -C /tmp/c rev-parse HEAD"
    )
    out = ok(cache, container, "sh", "-c", script).split()
    assert "refs/heads/" in " ".join(out) and out[-1] == out[0]


def test_ca_bundle_present_and_no_build_tools(cache: Path, container: str) -> None:
    ok(cache, container, "test", "-s", "/etc/ssl/certs/ca-certificates.crt")
    assert run_in(cache, container, "python3", "-m", "pip", "--version").returncode != 0
    # one shell for the rest: every `buildah run` costs about a second here
    found = ok(cache, container, "sh", "-c", "for t in pip pip3 gcc cc make; do command -v $t || true; done; "
               "ls -d /opt/build-tools /src /dist 2>/dev/null || true; ls /var/lib/apt/lists 2>/dev/null || true")
    assert [f for f in found.split() if f not in ("lock", "partial", "auxfiles")] == []


def test_push_to_a_loopback_registry_over_plain_http(cache: Path, image: str, tmp_path: Path) -> None:
    with docker_registry(tmp_path / "registry") as registry:
        digest = push_image(cache, image, f"{registry}/deploy-mcp:{package_version()}")
        assert digest.startswith("sha256:")
        manifests = f"http://{registry}/v2/deploy-mcp/manifests"
        accept = {"Accept": f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"}
        by_tag = httpx.get(f"{manifests}/{package_version()}", headers=accept, timeout=10)
        assert by_tag.status_code == 200 and by_tag.headers["Docker-Content-Digest"] == digest
        assert httpx.head(f"{manifests}/{digest}", headers=accept, timeout=10).status_code == 200


def test_read_only_root_with_a_writable_tmp(cache: Path, container: str, tmp_path: Path) -> None:
    """As a pod with readOnlyRootFilesystem and an emptyDir on /tmp: the container's rootfs bind-mounted read-only,
    a tmpfs on /tmp, chroot as 10001 with the image's environment; the CLI, the imports and git still work."""
    rootfs = Path(buildah(cache, "buildah mount", "mount", container).strip())
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted: list[Path] = []

    def mount(*argv: str, target: Path) -> None:
        subprocess.run(["mount", *argv, str(target)], check=True)
        mounted.append(target)

    try:
        mount("--bind", str(rootfs), target=ro)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        mount("-t", "tmpfs", "tmpfs", target=ro / "tmp")
        mount("-t", "proc", "proc", target=ro / "proc")
        env = ["PATH=/opt/deploy-mcp/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"]
        script = (
            "set -e; cd /tmp; if touch /opt/x 2>/dev/null; then echo root is writable; exit 1; fi; "
            "deploy-mcp migrate --help >/dev/null; "
            "python3 -c 'import mcp_server.wiring, workflows.activities.deploy'; git init -q /tmp/r; "
            "git -C /tmp/r -c user.email=t@example.com -c user.name=t commit -q --allow-empty -m x; "
            "git ls-remote /tmp/r >/dev/null; git clone -q /tmp/r /tmp/c; echo ok"
        )
        proc = subprocess.run(
            ["chroot", "--userspec=10001:10001", str(ro), "/usr/bin/env", "-i", *env, "sh", "-c", script],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", str(target)], check=False)
        buildah(cache, "buildah umount", "umount", container, check=False)
