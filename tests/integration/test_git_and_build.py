"""The git adapter and the local builder against real servers the test starts on loopback.

- A real git server over HTTPS: `git http-backend` (CGI) behind a small threaded Python HTTPS server with a
  self-signed certificate made with `cryptography`, requiring HTTP Basic `x-access-token:<token>` as GitHub does
  for installation tokens. It serves a repository made here: `main` (two commits), `feature` and an annotated
  tag `v1` on the first commit, and `broken` whose Dockerfile has a failing `RUN` step. The server speaks
  protocol v2 (any commit can be fetched by SHA) or, for the fallback, v0 (only advertised tips).
- A real registry: Debian's `docker-registry` on a free port, with a busybox base image pushed through the
  distribution API (mcp_server.devenv.images).
- buildah (vfs storage, chroot isolation) builds the repository's Dockerfile and pushes it; skipped unless
  root with buildah installed.

The token must never show: not on any git command line, not in messages, logs or output.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_server.devenv.git_server import GIT_HOST_NAME, GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import busybox_web_files, docker_registry, push_image
from mcp_server.devenv.processes import free_port
from workflows.adapters import git as git_adapter
from workflows.adapters.buildah import BuilderMissing, BuildFailed, build_and_push
from workflows.adapters.git import (
    GitAuthError,
    GitError,
    GitTimeout,
    GitUnavailable,
    HostNotAllowed,
    RefNotFound,
    RepoNotFound,
    allowed_addresses,
    check_host_allowed,
    checkout,
    resolve_ref,
)
from workflows.adapters.registry import OciRegistry
from workflows.domain.build_spec import BuildImages, BuildSpec
from workflows.domain.credentials import GitCredentials
from workflows.domain.git_urls import InvalidGitSource
from workflows.domain.images import parse_image
from workflows.render.build_job import BUILD_SCRIPT, CLONE_SCRIPT, buildctl_args, digest_from_log

TOKEN = "ghs_test0nly0Secret0Token0abcdef123456"
WRONG_TOKEN = "ghs_wrong0Token0abcdef0000000000000000"

needs_buildah = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("buildah") is None,
    reason="the local builder needs root (buildah chroot isolation) and buildah on PATH; CI runs as root with it",
)


@dataclass(frozen=True)
class Repo:
    zero: str  # main~2: no branch or tag points at it
    first: str  # main~1 = feature = v1
    second: str  # main
    broken: str  # branch broken


def _make_repo(root: Path, work: Path, base_image: str) -> Repo:
    git_cmd("init", "-q", "--bare", "-b", "main", str(root / "app.git"), cwd=root)
    work.mkdir()
    git_cmd("init", "-q", "-b", "main", cwd=work)
    dockerfile = f"FROM {base_image}\nRUN echo building the app\nCOPY index.html /www/index.html\n"
    (work / "Dockerfile").write_text(dockerfile)
    (work / "index.html").write_text("<h1>version zero</h1>\n")
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "zero", cwd=work)
    zero = git_cmd("rev-parse", "HEAD", cwd=work)
    (work / "index.html").write_text("<h1>version one</h1>\n")
    git_cmd("commit", "-q", "-am", "first", cwd=work)
    first = git_cmd("rev-parse", "HEAD", cwd=work)
    git_cmd("tag", "-a", "v1", "-m", "release one", cwd=work)
    git_cmd("branch", "feature", cwd=work)
    (work / "index.html").write_text("<h1>version two</h1>\n")
    git_cmd("commit", "-q", "-am", "second", cwd=work)
    second = git_cmd("rev-parse", "HEAD", cwd=work)
    git_cmd("checkout", "-q", "-b", "broken", first, cwd=work)
    broken_dockerfile = f"FROM {base_image}\nCOPY index.html /www/index.html\nRUN echo about to fail && false\n"
    (work / "Dockerfile").write_text(broken_dockerfile)
    git_cmd("commit", "-q", "-am", "broken", cwd=work)
    broken = git_cmd("rev-parse", "HEAD", cwd=work)
    git_cmd("push", "-q", str(root / "app.git"), "main", "feature", "broken", "v1", cwd=work)
    return Repo(zero, first, second, broken)


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="deploy-mcp-git-build-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry_host(workdir: Path) -> Iterator[str]:
    """A real docker-registry on 127.0.0.1:<free port>, stopped by PID afterwards."""
    with docker_registry(workdir / "registry") as host:
        yield host


@pytest.fixture(scope="module")
def base_image(registry_host: str) -> str:
    busybox = busybox_web_files("")["busybox"]
    files = {"bin/busybox": busybox, "bin/sh": busybox, "bin/echo": busybox, "bin/false": busybox}
    entrypoint = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    asyncio.run(push_image(registry_host, "base/busybox", "v1", files, entrypoint=entrypoint))
    return f"{registry_host}/base/busybox:v1"


@pytest.fixture(scope="module")
def tls(workdir: Path) -> tuple[Path, Path]:
    d = workdir / "tls"
    d.mkdir()
    return self_signed_tls(d)


@pytest.fixture(scope="module")
def repo_root(workdir: Path, base_image: str) -> tuple[Path, Repo]:
    root = workdir / "repos"
    root.mkdir()
    return root, _make_repo(root, workdir / "work", base_image)


@pytest.fixture(scope="module")
def git_server(repo_root: tuple[Path, Repo], tls: tuple[Path, Path]) -> Iterator[GitHttpsServer]:
    server = GitHttpsServer(repo_root[0], *tls, TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def git_server_v0(repo_root: tuple[Path, Repo], tls: tuple[Path, Path]) -> Iterator[GitHttpsServer]:
    server = GitHttpsServer(repo_root[0], *tls, TOKEN, protocol_v2=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def repo(repo_root: tuple[Path, Repo]) -> Repo:
    return repo_root[1]


@pytest.fixture
def ca(tls: tuple[Path, Path]) -> Path:
    return tls[0]


CREDS = GitCredentials(token=TOKEN)


@dataclass
class ExecRecorder:
    """Records the argv and environment of every process the adapters start (through asyncio)."""

    calls: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> ExecRecorder:
    record = ExecRecorder()
    real = asyncio.create_subprocess_exec

    async def spy(*argv: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        record.calls.append(([str(a) for a in argv], dict(kwargs.get("env") or {})))
        return await real(*argv, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spy)
    return record


def _secret_forms(token: str) -> list[str]:
    return [token, base64.b64encode(f"x-access-token:{token}".encode()).decode()]


def _assert_no_secret(text: str, token: str = TOKEN) -> None:
    for form in _secret_forms(token):
        assert form not in text


# -- refs -------------------------------------------------------------------------------------------------------


async def test_resolve_default_branch_tag_branch_and_sha(
    git_server: GitHttpsServer, repo: Repo, ca: Path, recorder: ExecRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = git_server.url()
    head = await resolve_ref(url, None, CREDS, ca_file=ca)
    assert (head.sha, head.ref_name, head.verified) == (repo.second, "refs/heads/main", True)
    tag = await resolve_ref(url, "v1", CREDS, ca_file=ca)
    assert (tag.sha, tag.ref_name) == (repo.first, "refs/tags/v1"), "an annotated tag resolves to its commit"
    branch = await resolve_ref(url, "feature", CREDS, ca_file=ca)
    assert (branch.sha, branch.ref_name) == (repo.first, "refs/heads/feature")
    full = await resolve_ref(url, "refs/heads/broken", CREDS, ca_file=ca)
    assert full.sha == repo.broken
    by_sha = await resolve_ref(url, repo.zero.upper(), CREDS, ca_file=ca)
    assert (by_sha.sha, by_sha.ref_name, by_sha.verified) == (repo.zero, None, True), "v2 serves any commit"

    # The token reached the server in the Authorization header only, and no git process saw it in its argv.
    assert {auth for _, _, auth in git_server.seen} == {git_server.expected_auth}
    assert all(TOKEN not in path for _, path, _ in git_server.seen)
    git_calls = [argv for argv, _ in recorder.calls if argv[0] == "git"]
    assert git_calls and all("ls-remote" in argv or "fetch" in argv or "init" in argv for argv in git_calls)
    for argv, env in recorder.calls:
        _assert_no_secret(" ".join(argv))
        assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == ""
        assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        assert "protocol.allow=never" in argv and "protocol.https.allow=always" in argv
    _assert_no_secret(caplog.text)
    assert "ls-remote" in caplog.text


async def test_unknown_ref_names_the_ref_and_lists_branches(git_server: GitHttpsServer, ca: Path) -> None:
    with pytest.raises(RefNotFound) as info:
        await resolve_ref(git_server.url(), "no-such-branch", CREDS, ca_file=ca)
    message = str(info.value)
    assert "'no-such-branch'" in message and "neither a branch nor a tag" in message
    assert "branches: main, broken, feature" in message, "the default branch comes first"
    assert info.value.branches == ["main", "broken", "feature"] and info.value.retryable is False
    with pytest.raises(RefNotFound, match="abbreviated commit SHA"):
        await resolve_ref(git_server.url(), "abc1234", CREDS, ca_file=ca)


async def test_credentials_missing_or_wrong_are_auth_errors_without_secrets(
    git_server: GitHttpsServer, ca: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GitAuthError, match="requires credentials to read app and none are configured") as missing:
        await resolve_ref(git_server.url(), None, None, ca_file=ca)
    assert "set_git_credentials" in str(missing.value)
    with pytest.raises(GitAuthError, match="refused the configured credentials") as wrong:
        await resolve_ref(git_server.url(), "main", GitCredentials(token=WRONG_TOKEN), ca_file=ca)
    assert wrong.value.retryable is False
    for text in (str(missing.value), str(wrong.value), caplog.text):
        _assert_no_secret(text, WRONG_TOKEN)
        _assert_no_secret(text)


async def test_untrusted_certificate_and_missing_repository(git_server: GitHttpsServer, ca: Path) -> None:
    with pytest.raises(GitError, match="TLS certificate that is not trusted") as untrusted:
        await resolve_ref(git_server.url(), None, CREDS)
    assert untrusted.value.retryable is False
    with pytest.raises(RepoNotFound, match="has no repository nope"):
        await resolve_ref(git_server.url("nope.git"), None, CREDS, ca_file=ca)


async def test_unreachable_server_is_retryable() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(GitUnavailable) as info:
        await resolve_ref(f"https://127.0.0.1:{port}/app.git", None, CREDS)
    assert info.value.retryable is True and f"127.0.0.1:{port}" in str(info.value)


async def test_a_server_that_never_answers_times_out_and_git_is_killed(recorder: ExecRecorder) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection, never says a word
        port = silent.getsockname()[1]
        with pytest.raises(GitTimeout, match="did not finish within 1 s") as info:
            await resolve_ref(f"https://127.0.0.1:{port}/app.git", None, CREDS, timeout=1.0)
    assert info.value.retryable is True
    assert [argv for argv, _ in recorder.calls if "ls-remote" in argv]


async def test_pin_address_connects_to_the_checked_address(git_server: GitHttpsServer, repo: Repo, ca: Path) -> None:
    """git.test resolves nowhere: git reaches it only through the pinned address (http.curloptResolve), so the
    address checked by the host check is the one git connects to."""
    url = git_server.url(host=GIT_HOST_NAME)
    with pytest.raises(GitUnavailable):
        await resolve_ref(url, None, CREDS, ca_file=ca)
    resolved = await resolve_ref(url, None, CREDS, ca_file=ca, pin_address="127.0.0.1")
    assert resolved.sha == repo.second
    with pytest.raises(InvalidGitSource, match="not an IP address"):
        await resolve_ref(url, None, CREDS, ca_file=ca, pin_address="127.0.0.1 -oProxyCommand=id")


async def test_loopback_git_host_needs_the_allow_list() -> None:
    with pytest.raises(HostNotAllowed, match="loopback") as info:
        await check_host_allowed("127.0.0.1", [])
    assert git_adapter.ALLOW_SETTING in str(info.value)
    assert await allowed_addresses("127.0.0.1", ["127.0.0.1"]) == ["127.0.0.1"]
    await check_host_allowed("localhost", ["localhost"])


# -- checkout ---------------------------------------------------------------------------------------------------


def _tree_has_no_secret(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in _secret_forms(TOKEN):
                assert form.encode() not in data, f"{path} holds the token"


async def test_checkout_exactly_one_commit(git_server: GitHttpsServer, repo: Repo, ca: Path, workdir: Path) -> None:
    dest = workdir / "checkout-zero"
    assert await checkout(git_server.url(), repo.zero, dest, CREDS, ca_file=ca) == repo.zero
    assert (dest / "index.html").read_text() == "<h1>version zero</h1>\n"
    shallow = git_cmd("rev-parse", "--is-shallow-repository", cwd=dest)
    assert shallow == "true", "a protocol v2 server serves the commit by SHA: one shallow fetch"
    assert git_cmd("remote", cwd=dest) == "", "the checkout keeps no remote"
    _tree_has_no_secret(dest)

    with pytest.raises(GitError, match="not an empty directory"):
        await checkout(git_server.url(), repo.second, dest, CREDS, ca_file=ca)


async def test_checkout_falls_back_when_the_server_serves_only_tips(
    git_server_v0: GitHttpsServer, repo: Repo, ca: Path, workdir: Path
) -> None:
    url = git_server_v0.url()
    probe = await resolve_ref(url, repo.zero, CREDS, ca_file=ca)
    assert (probe.sha, probe.verified) == (repo.zero, False), "v0 will not confirm a non-tip SHA: trusted"
    tip = await resolve_ref(url, repo.first, CREDS, ca_file=ca)
    assert tip.verified is True

    dest = workdir / "checkout-v0"
    assert await checkout(url, repo.zero, dest, CREDS, ca_file=ca) == repo.zero
    assert (dest / "index.html").read_text() == "<h1>version zero</h1>\n"
    _tree_has_no_secret(dest)


async def test_checkout_of_an_unknown_commit_is_ref_not_found(
    git_server: GitHttpsServer, ca: Path, workdir: Path
) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    unknown = await resolve_ref(git_server.url(), sha, CREDS, ca_file=ca)
    assert unknown.verified is False, "the server would not serve it: trusted, and the checkout says so"
    with pytest.raises(RefNotFound, match=f"commit {sha} is not in"):
        await checkout(git_server.url(), sha, workdir / "checkout-unknown", CREDS, ca_file=ca)


async def test_build_job_clone_script_checks_out_with_the_token_from_the_environment(
    git_server: GitHttpsServer, repo: Repo, ca: Path, workdir: Path
) -> None:
    """The clone init container's script (render/scripts/clone.sh), run here with sh against the same server."""
    tmp = workdir / "clone-script"
    (tmp / "tmp").mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp / "tmp"),
        "TMPDIR": str(tmp / "tmp"),
        "SOURCE_DIR": str(tmp / "src"),
        "GIT_CREDENTIALS_DIR": str(tmp / "no-credentials"),
        "GIT_URL": git_server.url(),
        "GIT_SHA": repo.first,
        "GIT_TOKEN": TOKEN,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_SSL_CAINFO": str(ca),
    }
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", CLONE_SCRIPT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    assert f"checked out {repo.first}" in text
    assert (tmp / "src" / "index.html").read_text() == "<h1>version one</h1>\n"
    _assert_no_secret(text)
    _tree_has_no_secret(tmp / "src")


FAKE_BUILDCTL = r"""#!/bin/sh
# a stand-in for buildctl: records its arguments, writes build metadata as buildctl --metadata-file does
printf '%s\n' "$@" > "$ARGS_FILE"
[ "${FAIL:-0}" = 1 ] && { echo "#5 ERROR: process did not complete successfully" >&2; exit 1; }
echo "#5 exporting to image"
cat > "$METADATA_FILE" <<JSON
{
  "buildx.build.ref": "builder/x",
  "containerimage.config.digest": "sha256:$(printf c%.0s $(seq 64))",
  "containerimage.descriptor": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:$(printf d%.0s $(seq 64))"
  },
  "containerimage.digest": "$DIGEST"
}
JSON
if [ "${ONELINE:-0}" = 1 ]; then
  tr -d '\n ' < "$METADATA_FILE" > "$METADATA_FILE.1" && mv "$METADATA_FILE.1" "$METADATA_FILE"
fi
"""


async def _run_build_script(workdir: Path, spec: BuildSpec, **env: str) -> tuple[int, str, list[str]]:
    bin_dir = workdir / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    buildctl = bin_dir / "buildctl"
    buildctl.write_text(FAKE_BUILDCTL)
    buildctl.chmod(0o755)
    args_file = workdir / "buildctl-args"
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "ARGS_FILE": str(args_file),
        "METADATA_FILE": str(workdir / "metadata.json"),
        "BUILD_SECRET_NAMES": " ".join(spec.build_secret_names),
        "RAILPACK": "1" if spec.builder == "railpack" else "0",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", BUILD_SCRIPT, "build", *buildctl_args(spec), env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    recorded = args_file.read_text().splitlines() if args_file.exists() else []
    return proc.returncode or 0, out.decode(), recorded


def _build_spec(**changes: Any) -> BuildSpec:
    fields: dict[str, Any] = {
        "tenant": "acme", "project": "shop", "app": "web", "build_id": "b1", "namespace": "deploy-mcp-builds",
        "git_url": "https://github.com/acme/shop.git", "commit_sha": "0" * 40, "builder": "railpack",
        "image": "harbor.example.com/acme/web:v1", "buildkit_addr": "tcp://buildkitd:1234",
        "cache_ref": "harbor.example.com/acme/cache:buildcache",
        "images": BuildImages(clone="alpine/git:v2", railpack="railpack:1", buildctl="moby/buildkit:v0.20.0"),
        "build_secrets_secret": "web-build-secrets", "build_secret_names": ("NPM_TOKEN", "SENTRY_AUTH_TOKEN"),
    }
    fields.update(changes)
    return BuildSpec(**fields)


async def test_build_job_build_script_prints_the_pushed_digest(workdir: Path) -> None:
    """The build container's script (workflows/render/scripts/build.sh), run here with sh and a stand-in buildctl."""
    digest = "sha256:" + "e" * 64
    spec = _build_spec()
    values = {"NPM_TOKEN": "npm-secret-value", "SENTRY_AUTH_TOKEN": "sentry-secret-value"}
    code, out, args = await _run_build_script(workdir, spec, DIGEST=digest, **values)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == f"DEPLOY_MCP_DIGEST={digest}"
    assert digest_from_log(out) == digest
    expected_hash = hashlib.sha256(b"NPM_TOKEN=npm-secret-value\nSENTRY_AUTH_TOKEN=sentry-secret-value\n").hexdigest()
    assert args[: len(buildctl_args(spec))] == buildctl_args(spec)
    assert args[-2:] == ["--opt", f"secrets-hash={expected_hash}"], "railpack's layer cache follows the secrets"
    for value in values.values():
        assert value not in out and all(value not in a for a in args)

    dockerfile = _build_spec(builder="dockerfile", build_secret_names=(), build_secrets_secret=None)
    code, out, args = await _run_build_script(workdir, dockerfile, DIGEST=digest, ONELINE="1")
    assert code == 0 and digest_from_log(out) == digest, "compact JSON metadata works too"
    assert not any(a.startswith("secrets-hash=") for a in args)


async def test_build_job_build_script_fails_without_a_digest(workdir: Path) -> None:
    spec = _build_spec(build_secret_names=(), build_secrets_secret=None)
    code, out, _ = await _run_build_script(workdir, spec, DIGEST="not-a-digest")
    assert code == 1 and "has no containerimage.digest" in out and digest_from_log(out) is None
    code, out, _ = await _run_build_script(workdir, spec, DIGEST="sha256:" + "e" * 64, FAIL="1")
    assert code == 1 and "DEPLOY_MCP_DIGEST" not in out


# -- SSH --------------------------------------------------------------------------------------------------------

FAKE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBkZXBsb3ktbWNwLXRlc3Qtb25seS1ub3QtYS1yZWFsLWtleQAAAJgAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def _key_file(ssh_command: str) -> dict[str, Any]:
    key = Path(ssh_command.split(" -i ", 1)[1].split()[0])
    return {"key": key, "mode": key.stat().st_mode & 0o777, "text": key.read_text()}


async def test_ssh_deploy_key_is_a_0600_file_removed_afterwards(
    recorder: ExecRecorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No SSH server here: git connects to a closed port and fails; what matters is how the key was handed over."""
    caplog.set_level(logging.DEBUG)
    seen: dict[str, Any] = {}
    real = asyncio.create_subprocess_exec

    async def inspect(*argv: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        ssh = kwargs["env"]["GIT_SSH_COMMAND"]
        seen.update(_key_file(ssh), ssh=ssh, argv=argv)
        return await real(*argv, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", inspect)
    port = free_port()
    creds = GitCredentials(ssh_private_key=FAKE_KEY)
    with pytest.raises(GitUnavailable) as info:
        await resolve_ref(f"ssh://git@127.0.0.1:{port}/owner/app.git", "main", creds)
    assert seen["mode"] == 0o600 and seen["text"].strip() == FAKE_KEY.strip()
    assert "StrictHostKeyChecking=accept-new" in seen["ssh"] and "BatchMode=yes" in seen["ssh"]
    assert "-F /dev/null" in seen["ssh"] and "IdentitiesOnly=yes" in seen["ssh"]
    assert not seen["key"].exists() and not seen["key"].parent.exists(), "the key and its directory are removed"
    for secret_line in FAKE_KEY.splitlines()[1:-1]:
        assert secret_line not in str(info.value) and secret_line not in caplog.text
        assert all(secret_line not in str(a) for a in seen["argv"])


# -- the local builder ------------------------------------------------------------------------------------------


@needs_buildah
async def test_build_and_push_with_buildah_gives_the_registry_digest(
    git_server: GitHttpsServer, repo: Repo, ca: Path, workdir: Path, registry_host: str,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    source = workdir / "build-main"
    await checkout(git_server.url(), repo.second, source, CREDS, ca_file=ca)
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    image = f"{registry_host}/acme/web:{repo.second}"
    result = await build_and_push(
        source, "", image, registry_insecure=True, storage_root=workdir / "buildah", on_line=on_line
    )
    assert result.image == image and result.dockerfile == "Dockerfile"
    assert result.digest.startswith("sha256:") and len(result.digest) == 71
    assert any(line.startswith("STEP 1/3: FROM ") for line in lines), lines[:10]
    assert "STEP 2/3: RUN echo building the app" in lines and "building the app" in lines
    async with OciRegistry() as oci:
        resolved = await oci.resolve(parse_image(image))
    assert resolved.digest == result.digest
    assert result.pinned == f"{registry_host}/acme/web@{result.digest}"
    captured = capsys.readouterr()
    for text in ("\n".join(lines), caplog.text, captured.out, captured.err):
        _assert_no_secret(text)


@needs_buildah
async def test_failing_step_is_named_with_its_last_lines(
    git_server: GitHttpsServer, repo: Repo, ca: Path, workdir: Path, registry_host: str
) -> None:
    source = workdir / "build-broken"
    await checkout(git_server.url(), repo.broken, source, CREDS, ca_file=ca)
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    with pytest.raises(BuildFailed) as info:
        await build_and_push(
            source, "", f"{registry_host}/acme/web:{repo.broken}", registry_insecure=True,
            storage_root=workdir / "buildah", on_line=on_line,
        )
    failed = info.value
    assert failed.step == "STEP 3/3: RUN echo about to fail && false"
    assert "about to fail" in failed.last_lines
    assert "STEP 3/3: RUN echo about to fail && false" in str(failed)
    assert failed.retryable is False and failed.last_lines == lines[-len(failed.last_lines) :]


async def test_without_a_dockerfile_the_local_builder_says_what_is_missing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = workdir / "no-dockerfile"
    (source / "app").mkdir(parents=True)
    (source / "app" / "main.py").write_text("print('hi')\n")

    async def on_line(line: str) -> None:
        raise AssertionError("nothing runs")

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuilderMissing, match="railpack is not installed on this machine; add a Dockerfile"):
        await build_and_push(
            source, "app", "127.0.0.1:1/acme/web:v1", registry_insecure=True, storage_root=workdir / "b",
            on_line=on_line,
        )
    with pytest.raises(BuildFailed, match=r"without '\.\.'"):
        await build_and_push(
            source, "../x", "127.0.0.1:1/acme/web:v1", registry_insecure=True, storage_root=workdir / "b",
            on_line=on_line,
        )


@needs_buildah
async def test_build_secrets_reach_run_mounts_but_no_log_layer_or_argv(
    base_image: str, registry_host: str, workdir: Path, recorder: ExecRecorder,
) -> None:
    source = workdir / "secret-src"
    source.mkdir()
    (source / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        'RUN --mount=type=secret,id=API_KEY ["/bin/busybox", "sha256sum", "/run/secrets/API_KEY"]\n')
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    value = "sk-live-0nly0for0the0build0step"
    result = await build_and_push(source, "", f"{registry_host}/acme/secret:v1", registry_insecure=True,
                                  storage_root=workdir / "buildah-secrets", on_line=on_line,
                                  secrets={"API_KEY": value})
    expected = hashlib.sha256(value.encode()).hexdigest()
    assert f"{expected}  /run/secrets/API_KEY" in lines, lines  # the RUN step read the value
    assert value not in "\n".join(lines)
    assert all(value not in " ".join(argv) for argv, _ in recorder.calls), "never on a command line"
    assert not list((workdir / "buildah-secrets" / "tmp").glob("secrets-*")), "the files are gone"
    async with httpx.AsyncClient() as h:  # and not in the pushed image's layers
        manifest = (await h.get(f"http://{registry_host}/v2/acme/secret/manifests/v1",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})).json()
        for layer in manifest["layers"]:
            blob = await h.get(f"http://{registry_host}/v2/acme/secret/blobs/{layer['digest']}")
            assert value.encode() not in gzip.decompress(blob.content)
    assert result.digest.startswith("sha256:")
