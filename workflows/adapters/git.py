"""Git over the network for builds: is a host one a build may fetch from, which commit does a ref name now,
and a checkout of exactly one commit.

Every git process runs with an environment built from nothing (no user or system git config, no credential
helper, no SSH agent, no terminal or askpass prompt), English messages (so failures can be classified), only
the https and ssh transports (`protocol.allow=never` + those two), and no HTTP redirects (a redirect could
lead to an address `check_host_allowed` never saw). Credentials never appear on a command line, where `ps`
shows them: a token reaches git as an `http.extraHeader` through GIT_CONFIG_COUNT/KEY/VALUE environment
variables; an SSH deploy key is written to a 0600 file in a private temporary directory, used through
GIT_SSH_COMMAND and removed afterwards. Every message and log line is redacted of the token, its Basic
encoding and the key.

Failures are `GitError`s whose `retryable` tells a workflow whether trying again can help and whose message
tells an agent what to do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from workflows.adapters.errors import AdapterError, AuthRefused, InvalidRequest, ResourceNotFound, ServiceUnavailable
from workflows.domain.addresses import AllowList, parse_address, refused_address
from workflows.domain.credentials import GitCredentials
from workflows.domain.git_refs import RemoteRefs, branch_summary, parse_ls_remote, pick_ref, ref_candidates
from workflows.domain.git_urls import (
    CREDENTIALS_TOOL,
    GitUrl,
    InvalidGitSource,
    check_ref,
    is_full_sha,
    looks_like_abbreviated_sha,
    parse_git_url,
)

logger = logging.getLogger(__name__)

ALLOW_SETTING = "DEPLOY_MCP_GIT_ALLOWED_HOSTS"
"""The operator setting that lists hosts, addresses or networks builds may fetch from although they are not
public (an internal Git server)."""

PROTOCOL_CONFIG: tuple[str, ...] = (
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "http.followRedirects=false",
    "credential.helper=",
    "core.askPass=",
    "advice.detachedHead=false",
)
LS_REMOTE_TIMEOUT = 60.0
CHECKOUT_TIMEOUT = 600.0
_STDERR_TAIL = 6


class GitError(AdapterError):
    """A git operation failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class HostNotAllowed(GitError, InvalidRequest):
    """The git host resolves to an address builds must not reach (loopback, private, metadata, ...)."""


class GitHostUnresolvable(GitError, ResourceNotFound):
    """The git host has no address (DNS answered that the name does not exist)."""


class GitUnavailable(GitError, ServiceUnavailable):
    """The server could not be reached or answered with a server error; trying later may help."""

    retryable = True


class GitTimeout(GitUnavailable):
    """git did not finish in time."""


class GitAuthError(GitError, AuthRefused):
    """The server wants credentials, or refused the ones given."""


class RepoNotFound(GitError, ResourceNotFound):
    """The server has no such repository (or hides a private one from the credentials given)."""


class RefNotFound(GitError, ResourceNotFound):
    """The repository has no such branch, tag or commit; `branches` lists some that exist."""

    def __init__(self, message: str, *, url: str = "", ref: str = "", branches: Sequence[str] = ()) -> None:
        super().__init__(message, url=url)
        self.ref = ref
        self.branches = list(branches)


@dataclass(frozen=True)
class ResolvedRef:
    """The commit a ref names now. `ref_name` is the full ref (refs/heads/main, refs/tags/v1) or None for a SHA
    given as is; `verified` is False when the server would not confirm a given SHA exists (it was trusted)."""

    sha: str
    ref_name: str | None
    verified: bool = True


# --- hosts ----------------------------------------------------------------------------------------------------


async def resolve_addresses(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to (asyncio getaddrinfo), sorted. Tests replace this function."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def allowed_addresses(host: str, allow: Collection[str] | AllowList = ()) -> list[str]:
    """Resolve `host` and return its addresses when a build may fetch from it: raise HostNotAllowed when ANY
    address is loopback, private, link-local, carrier-grade NAT, unspecified, multicast, reserved or a cloud
    metadata endpoint, unless the host or that address is in `allow`. Pass one of the returned addresses as
    `pin_address` to the git calls, so git connects to an address that was checked (no DNS rebinding)."""
    try:
        addresses = await resolve_addresses(host)
    except socket.gaierror as e:
        if e.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", None)):
            raise GitUnavailable(f"could not resolve git host {host} now ({e.strerror}); try again later") from e
        raise GitHostUnresolvable(
            f"git host {host} does not resolve to any address; check the host name in the repository URL"
        ) from e
    if not addresses:
        raise GitHostUnresolvable(f"git host {host} resolves to no address; check the host name in the repository URL")
    refused = refused_address(host, addresses, allow)
    if refused is not None:
        address, cls = refused
        shown = host if host == address else f"{host} resolves to {address}, which"
        raise HostNotAllowed(
            f"git host {shown} is a {cls} address: builds may only fetch from public addresses. If this is the "
            f"operator's own Git server, add {host} (or {address}) to the {ALLOW_SETTING} setting"
        )
    return addresses


async def check_host_allowed(host: str, allow: Collection[str] | AllowList = ()) -> None:
    """Raise HostNotAllowed unless every address of `host` is public or allowed (see `allowed_addresses`)."""
    await allowed_addresses(host, allow)


# --- running git ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    returncode: int
    stdout: str
    stderr: str


class _Redactor:
    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


@dataclass
class _GitEnv:
    env: dict[str, str]
    config: list[str]  # extra -c options (not secret)
    redact: _Redactor


def _basic(username: str, token: str) -> str:
    return base64.b64encode(f"{username}:{token}".encode()).decode("ascii")


@contextlib.contextmanager
def _git_env(
    url: GitUrl, credentials: GitCredentials | None, ca_file: Path | None, pin_address: str | None
) -> Iterator[_GitEnv]:
    """The environment of one git operation, with its private temporary directory removed afterwards."""
    if pin_address is not None:
        try:
            pin_address = str(parse_address(pin_address))
        except ValueError:
            raise InvalidGitSource(f"pin_address {pin_address[:60]!r} is not an IP address") from None
    tmp = Path(tempfile.mkdtemp(prefix="deploy-mcp-git-"))  # 0700
    secrets = credentials.secrets() if credentials else []
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(tmp),
            "XDG_CONFIG_HOME": str(tmp),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",  # empty: git skips core.askPass and SSH_ASKPASS and, with no terminal, fails
            "SSH_ASKPASS": "",
            "SSH_ASKPASS_REQUIRE": "never",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_SSH_VARIANT": "ssh",
        }
        config: list[str] = []
        if ca_file is not None:
            env["GIT_SSL_CAINFO"] = str(ca_file)
        if url.scheme == "https":
            if pin_address is not None:
                shown = f"[{pin_address}]" if ":" in pin_address else pin_address
                config.append(f"http.curloptResolve={url.host}:{url.effective_port}:{shown}")
            if credentials is not None and credentials.token:
                encoded = _basic(credentials.username, credentials.token)
                secrets.append(encoded)
                env["GIT_CONFIG_COUNT"] = "1"
                env["GIT_CONFIG_KEY_0"] = "http.extraHeader"
                env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {encoded}"
        else:
            known_hosts = tmp / "known_hosts"
            strict = "accept-new"
            if credentials is not None and credentials.ssh_known_hosts:
                known_hosts.write_text(credentials.ssh_known_hosts.strip() + "\n")
                strict = "yes"
            ssh = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
            ssh += ["-o", f"StrictHostKeyChecking={strict}", "-o", f"UserKnownHostsFile={known_hosts}"]
            ssh += ["-o", "ConnectTimeout=20"]
            if credentials is not None and credentials.ssh_private_key:
                key = tmp / "deploy_key"
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(credentials.ssh_private_key.strip() + "\n")
                ssh += ["-i", str(key)]
            else:
                ssh += ["-o", "PubkeyAuthentication=no"]
            if pin_address is not None:
                ssh += ["-o", f"HostName={pin_address}", "-o", f"HostKeyAlias={url.host}"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        yield _GitEnv(env, config, _Redactor(secrets))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _run_git(
    args: Sequence[str], genv: _GitEnv, *, timeout: float, cwd: Path | None = None, url: GitUrl | None = None
) -> _Result:
    argv = ["git", *(a for c in (*PROTOCOL_CONFIG, *genv.config) for a in ("-c", c)), *args]
    logger.debug("running %s", genv.redact(shlex.join(argv)))
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=genv.env,
        cwd=cwd,
        start_new_session=True,  # its ssh and remote helpers are killed with it
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        where = f" talking to {url.netloc}" if url else ""
        message = f"git did not finish within {timeout:g} s{where}; try again later"
        raise GitTimeout(message, url=url.url if url else "") from None
    except BaseException:
        _kill(proc)
        await proc.wait()
        raise
    result = _Result(
        proc.returncode if proc.returncode is not None else -1,
        genv.redact(out.decode(errors="replace")),
        genv.redact(err.decode(errors="replace")),
    )
    if result.returncode != 0:
        logger.debug("git exited %s: %s", result.returncode, _tail(result.stderr))
    return result


def _tail(text: str, lines: int = _STDERR_TAIL) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


_NOT_ADVERTISED = ("not our ref", "unadvertised object", "couldn't find remote ref", "no such remote ref")


def _classify(result: _Result, url: GitUrl, credentials: GitCredentials | None) -> GitError:
    """The GitError a failed git call means; the message names the repository and what to do."""
    err = result.stderr
    low = err.lower()
    detail = _tail(err)
    where = f"git server {url.netloc}"
    has_creds = credentials is not None and bool(
        credentials.token if url.scheme == "https" else credentials.ssh_private_key
    )
    tls_markers = (
        "ssl certificate problem",
        "server certificate verification failed",
        "certificate verify failed",
        "unable to get local issuer certificate",
        "no alternative certificate subject name matches",
    )
    if any(m in low for m in tls_markers):
        return GitError(
            f"{where} presented a TLS certificate that is not trusted ({detail}); if it is the operator's own "
            "Git server, configure its CA certificate",
            url=url.url,
        )
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return GitAuthError(
            f"{where}: the SSH host key does not match the pinned known_hosts entry; check the server's key and "
            f"update it with {CREDENTIALS_TOOL}",
            url=url.url,
        )
    auth_markers = (
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied (publickey",
        "permission denied, please try again",
        "the requested url returned error: 401",
        "the requested url returned error: 403",
        "invalid username or password",
        "http basic: access denied",
    )
    if any(m in low for m in auth_markers):
        if has_creds:
            return GitAuthError(
                f"{where} refused the configured credentials for {url.repo_path}: they are wrong, expired or lack "
                f"read access to it; update them with {CREDENTIALS_TOOL}",
                url=url.url,
            )
        return GitAuthError(
            f"{where} requires credentials to read {url.repo_path} and none are configured; give a token (https) or "
            f"a deploy key (ssh) with {CREDENTIALS_TOOL}",
            url=url.url,
        )
    not_found = (
        "repository not found",
        "does not appear to be a git repository",
        "the requested url returned error: 404",
        "no such repository",
    )
    if any(m in low for m in not_found) or re.search(r"repository '[^']*' not found", low):
        hint = ""
        if not has_creds:
            hint = f" (a private repository looks missing without credentials: configure them with {CREDENTIALS_TOOL})"
        return RepoNotFound(f"{where} has no repository {url.repo_path}; check the URL{hint}", url=url.url)
    unavailable = (
        "could not resolve host",
        "failed to connect",
        "connection refused",
        "connection timed out",
        "operation timed out",
        "connection reset",
        "timed out",
        "network is unreachable",
        "no route to host",
        "early eof",
        "the remote end hung up unexpectedly",
        "the requested url returned error: 5",
        "the requested url returned error: 429",
        "rpc failed",
        "connection closed by",
        "kex_exchange_identification",
        "temporary failure in name resolution",
    )
    if any(m in low for m in unavailable):
        return GitUnavailable(
            f"{where} could not be reached or failed to answer ({detail}); try again later", url=url.url
        )
    if "redirect" in low:
        return GitError(
            f"{where} redirected the request elsewhere; redirects are not followed: use the repository's final URL "
            f"({detail})",
            url=url.url,
        )
    return GitError(f"git failed against {where} (exit {result.returncode}): {detail}", url=url.url)


def _as_url(url: str | GitUrl) -> GitUrl:
    return url if isinstance(url, GitUrl) else parse_git_url(url)


# --- refs -----------------------------------------------------------------------------------------------------


def _check_pattern(pattern: str) -> str:
    if pattern == "HEAD":
        return pattern
    if pattern.endswith("^{}"):
        return check_ref(pattern[:-3]) + "^{}"
    return check_ref(pattern)


async def ls_remote(
    url: str | GitUrl,
    patterns: Sequence[str] = (),
    credentials: GitCredentials | None = None,
    *,
    heads_only: bool = False,
    ca_file: Path | None = None,
    pin_address: str | None = None,
    timeout: float = LS_REMOTE_TIMEOUT,
) -> RemoteRefs:
    """`git ls-remote --symref <url> [patterns]` (patterns are refs checked by `check_ref`, optionally with the
    `^{}` suffix of a peeled tag). `heads_only`: all branches and HEAD, whatever `patterns` says."""
    git_url = _as_url(url)
    checked = [p if p == "HEAD" else check_ref(p[:-3]) + "^{}" if p.endswith("^{}") else check_ref(p) for p in patterns]
    with _git_env(git_url, credentials, ca_file, pin_address) as genv:
        if heads_only:  # the branches, and HEAD to know which one is the default
            checked = ["HEAD", "refs/heads/*"]
        args = ["ls-remote", "--symref", git_url.url, *checked]
        result = await _run_git(args, genv, timeout=timeout, url=git_url)
    if result.returncode != 0:
        raise _classify(result, git_url, credentials)
    return parse_ls_remote(result.stdout)


async def resolve_ref(
    url: str | GitUrl,
    ref: str | None = None,
    credentials: GitCredentials | None = None,
    *,
    ca_file: Path | None = None,
    pin_address: str | None = None,
    timeout: float = LS_REMOTE_TIMEOUT,
) -> ResolvedRef:
    """The commit `ref` names on the remote now.

    - None (or "HEAD"): the remote's HEAD, i.e. its default branch.
    - A branch, a tag (annotated tags give the commit they point at) or a full ref name; a name that is both a
      tag and a branch means the tag, as in git.
    - A full commit SHA is accepted as is; it is verified to exist by fetching just that commit when the server
      allows fetching by SHA, and trusted otherwise (`verified=False`).
    Unknown refs raise RefNotFound naming the ref and up to 10 branches.
    """
    git_url = _as_url(url)

    async def remote_refs(patterns: Sequence[str], heads_only: bool = False) -> RemoteRefs:
        return await ls_remote(
            git_url, patterns, credentials, heads_only=heads_only, ca_file=ca_file, pin_address=pin_address,
            timeout=timeout,
        )

    if ref is None or ref == "HEAD":
        remote = await remote_refs(["HEAD"])
        if "HEAD" not in remote.refs:
            raise RefNotFound(
                f"{git_url.url} has no default branch (HEAD): the repository is empty; push a commit first",
                url=git_url.url,
                ref="HEAD",
            )
        return ResolvedRef(remote.refs["HEAD"], remote.head_target or "HEAD")

    ref = check_ref(ref)
    if is_full_sha(ref):
        verified = await _commit_exists(git_url, ref, credentials, ca_file, pin_address, timeout)
        return ResolvedRef(ref, None, verified=verified)

    candidates = ref_candidates(ref)
    remote = await remote_refs([*candidates, *(c + "^{}" for c in candidates if c.startswith("refs/tags/"))])
    picked = pick_ref(remote, ref)
    if picked is not None:
        return ResolvedRef(picked[1], picked[0])

    heads = await remote_refs((), heads_only=True)
    branches = heads.branches()
    if heads.head_target and heads.head_target.startswith("refs/heads/"):
        default = heads.head_target.removeprefix("refs/heads/")
        branches = [default] + [b for b in branches if b != default]
    hint = ""
    if looks_like_abbreviated_sha(ref):
        hint = "; it looks like an abbreviated commit SHA: give the full 40-character SHA"
    raise RefNotFound(
        f"ref {ref!r} is neither a branch nor a tag of {git_url.url}{hint}; {branch_summary(branches)}",
        url=git_url.url,
        ref=ref,
        branches=branches[:10],
    )


async def _commit_exists(
    url: GitUrl,
    sha: str,
    credentials: GitCredentials | None,
    ca_file: Path | None,
    pin_address: str | None,
    timeout: float,
) -> bool:
    """Fetch just the commit `sha` into a scratch repository: True when the server sent it, False when the
    server would not serve an unadvertised object (it may still exist). Other failures raise."""
    with _git_env(url, credentials, ca_file, pin_address) as genv:
        scratch = Path(genv.env["HOME"]) / "probe.git"
        init = await _run_git(["init", "-q", "--bare", "--template=", str(scratch)], genv, timeout=timeout, url=url)
        if init.returncode != 0:
            raise GitError(f"git init failed: {_tail(init.stderr)}")
        fetch = ["fetch", "-q", "--depth=1", "--filter=tree:0", "--no-tags", url.url, sha]
        result = await _run_git(fetch, genv, timeout=timeout, cwd=scratch, url=url)
    if result.returncode == 0:
        return True
    if any(m in result.stderr.lower() for m in _NOT_ADVERTISED):
        return False
    raise _classify(result, url, credentials)


# --- checkout -------------------------------------------------------------------------------------------------


async def checkout(
    url: str | GitUrl,
    sha: str,
    dest: Path,
    credentials: GitCredentials | None = None,
    *,
    ca_file: Path | None = None,
    pin_address: str | None = None,
    timeout: float = CHECKOUT_TIMEOUT,
) -> str:
    """Check out exactly commit `sha` of `url` into `dest` (absent or empty) and return it.

    `git init` + `git fetch --depth 1 <url> <sha>` + `git checkout`; when the server refuses to serve a commit
    by SHA (protocol v0 servers serve only advertised tips), it falls back to fetching all branches and tags.
    The repository keeps no remote and no credentials: `dest/.git` holds objects only. Submodules and LFS files
    are not fetched.
    """
    git_url = _as_url(url)
    sha = check_ref(sha)
    if not is_full_sha(sha):
        raise InvalidGitSource(f"checkout needs a full commit SHA, not {sha!r}; resolve the ref first")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise GitError(f"checkout destination {dest} exists and is not an empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    with _git_env(git_url, credentials, ca_file, pin_address) as genv:

        async def git(*args: str) -> _Result:
            return await _run_git(list(args), genv, timeout=timeout, cwd=dest, url=git_url)

        init = await git("init", "-q", "--template=", str(dest))
        if init.returncode != 0:
            raise GitError(f"git init failed in {dest}: {_tail(init.stderr)}")
        fetched = await git("fetch", "-q", "--depth=1", "--no-tags", git_url.url, sha)
        if fetched.returncode != 0:
            if not any(m in fetched.stderr.lower() for m in _NOT_ADVERTISED):
                raise _classify(fetched, git_url, credentials)
            logger.debug("%s does not serve commits by SHA; fetching all branches and tags", git_url.netloc)
            everything = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
            full = await git("fetch", "-q", "--no-tags", git_url.url, *everything)
            if full.returncode != 0:
                raise _classify(full, git_url, credentials)
        present = await git("cat-file", "-e", f"{sha}^{{commit}}")
        if present.returncode != 0:
            raise RefNotFound(
                f"commit {sha} is not in {git_url.url}: no branch or tag contains it (was it force-pushed away?); "
                "resolve a branch or tag again",
                url=git_url.url,
                ref=sha,
            )
        done = await git("checkout", "-q", "--detach", sha)
        if done.returncode != 0:
            raise GitError(f"git checkout of {sha} failed: {_tail(done.stderr)}", url=git_url.url)
        head = await git("rev-parse", "HEAD")
    checked_out = head.stdout.strip()
    if checked_out != sha:
        raise GitError(f"checked out {checked_out!r} instead of {sha}", url=git_url.url)
    return sha
