"""Git sources: the one parser for the repository URLs and refs agents hand the platform, and the pure parts of
talking to a git server (which addresses a build may fetch from, what `git ls-remote` answered).

Only two transports are accepted: `https://host[:port]/path` and SSH (`ssh://user@host[:port]/path` or the
scp-like `user@host:path`). Everything git could otherwise be talked into is refused here, before any process
runs: plain `http://` and `git://` (unencrypted), `file://` and local paths (the worker's own disk), remote
helpers such as `ext::` (arbitrary commands), option injection (a URL or ref starting with "-"), credentials
inside the URL (they would end up in logs, audit rows and `ps`), whitespace and control characters.

Pure: no I/O imports. The adapter that runs git is `workflows.adapters.git`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

URL_MAX = 2048
REF_MAX = 255
CREDENTIALS_TOOL = "set_git_credentials"
"""The tool an agent uses to give the platform a token or deploy key for a repository."""

EXAMPLES = (
    "e.g. https://github.com/owner/repo.git, ssh://git@git.example.com:2222/owner/repo.git or "
    "git@github.com:owner/repo.git"
)
REF_EXAMPLES = "e.g. a branch (main), a tag (v1.2.0) or a full 40-character commit SHA"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", re.ASCII)
_SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$", re.ASCII)
_PATH = re.compile(r"^[A-Za-z0-9._~/+@:-]+$", re.ASCII)
_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_ABBREV_SHA = re.compile(r"^[0-9a-f]{7,39}$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


class InvalidGitSource(ValueError):
    """A git URL or ref the platform will not use; the message says what is wrong and what a valid one looks
    like. It never repeats a URL that may hold credentials."""


def _show(part: str, limit: int = 80) -> str:
    return repr(part if len(part) <= limit else part[:limit] + "...")


def _has_control_or_space(text: str) -> bool:
    return any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or not c.isprintable() for c in text)


def _invalid_url(problem: str) -> InvalidGitSource:
    return InvalidGitSource(f"invalid git URL: {problem}; {EXAMPLES}")


@dataclass(frozen=True)
class GitUrl:
    """A parsed, accepted git repository URL. `host` is lowercase, an IPv6 address without brackets; `path`
    is what follows the host (with its leading "/" for URL forms, as written for the scp-like form)."""

    scheme: Literal["https", "ssh"]
    host: str
    path: str
    port: int | None = None
    user: str | None = None
    scp_like: bool = False

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def netloc(self) -> str:
        """host[:port], IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host

    @property
    def default_port(self) -> int:
        return 443 if self.scheme == "https" else 22

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.default_port

    @property
    def url(self) -> str:
        """The URL handed to git: never carries a password (the parser refuses those)."""
        if self.scp_like:
            return f"{self.user}@{self.netloc}:{self.path}"
        userinfo = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{userinfo}{self.netloc}{self.path}"

    @property
    def repo_path(self) -> str:
        """The repository path without leading "/" or trailing ".git": "owner/repo" on GitHub."""
        path = self.path.strip("/")
        return path[:-4] if path.endswith(".git") else path

    def __str__(self) -> str:
        return self.url


def _parse_host_port(netloc: str) -> tuple[str, int | None]:
    if not netloc:
        raise _invalid_url("the host is missing")
    port: int | None = None
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _invalid_url("an IPv6 host must be written in brackets: [2001:db8::1]")
        host, rest = netloc[1:end], netloc[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid_url(f"{_show(host)} is not an IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise _invalid_url("unexpected characters after the IPv6 host")
            port = _parse_port(rest[1:])
        return host.lower(), port
    host, colon, port_text = netloc.partition(":")
    if colon:
        port = _parse_port(port_text)
    _check_host(host)
    return host.lower(), port


def _parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise _invalid_url(f"port {_show(text)} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _invalid_url(f"port {port} is outside 1-65535")
    return port


def _check_host(host: str) -> None:
    if not host:
        raise _invalid_url("the host is missing")
    if host.startswith("-"):
        raise _invalid_url("the host must not start with '-' (it would be read as a command-line option)")
    if len(host) > 253:
        raise _invalid_url("the host name is longer than 253 characters")
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    labels = host.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise _invalid_url(f"host {_show(host)} is not a DNS name or an IP address")
    if labels[-1].isdigit():
        raise _invalid_url(f"host {_show(host)} is not a DNS name or an IPv4 address")


def _check_path(path: str) -> str:
    if "%" in path:
        raise _invalid_url("percent-encoded characters are not allowed in the repository path")
    if "?" in path or "#" in path:
        raise _invalid_url("a repository URL has no query string or fragment ('?', '#')")
    if not _PATH.match(path):
        raise _invalid_url(
            "the repository path may hold only letters, digits and . _ ~ / + @ : -"
        )
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise _invalid_url("the repository path is missing (owner/repo)")
    if any(s in (".", "..") for s in segments):
        raise _invalid_url("'.' and '..' are not allowed in the repository path")
    if any(s.startswith("-") for s in segments):
        raise _invalid_url("a repository path segment must not start with '-'")
    return path


def parse_git_url(url: str) -> GitUrl:
    """Parse and check a repository URL, or raise InvalidGitSource saying what is wrong with it.

    Accepted: `https://host[:port]/path`, `ssh://[user@]host[:port]/path`, `user@host:path` (scp-like SSH).
    """
    if not isinstance(url, str) or not url:
        raise _invalid_url("the URL is empty")
    if len(url) > URL_MAX:
        raise _invalid_url(f"the URL is {len(url)} characters; at most {URL_MAX} are allowed")
    if _has_control_or_space(url):
        raise _invalid_url("the URL contains whitespace or control characters")
    if url.startswith("-"):
        raise _invalid_url("the URL must not start with '-' (git would read it as a command-line option)")
    if _HELPER.match(url) and "://" not in url.split("::", 1)[0]:
        raise _invalid_url(
            f"remote helper transports ({url.split('::', 1)[0]}::) are not allowed: they can run commands"
        )

    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        return _parse_scp_like(url)

    scheme = scheme_match.group(1).lower()
    rest = url[scheme_match.end() :]
    if scheme == "http":
        raise _invalid_url("plain http:// is not allowed: the code and any token would travel unencrypted; use https://")
    if scheme == "git":
        raise _invalid_url("git:// is unauthenticated and unencrypted; use https:// or ssh://")
    if scheme == "file":
        raise _invalid_url("file:// URLs are not allowed: builds fetch from a git server, not from the platform's disk")
    if scheme in ("git+ssh", "ssh+git"):
        raise _invalid_url(f"write {scheme}:// as ssh://")
    if scheme not in ("https", "ssh"):
        raise _invalid_url(f"the {scheme}:// scheme is not supported; only https:// and ssh:// are")

    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        if scheme == "https":
            raise _invalid_url(
                f"credentials do not belong in the URL (they would be logged); remove them and use {CREDENTIALS_TOOL} "
                "instead"
            )
        if ":" in userinfo:
            raise _invalid_url(
                f"a password does not belong in an ssh:// URL; remove it and use {CREDENTIALS_TOOL} to give a deploy "
                "key instead"
            )
        if not _SSH_USER.match(userinfo):
            raise _invalid_url("the SSH user name may hold only letters, digits, '.', '_' and '-'")
        user: str | None = userinfo
    else:
        user = None
    host, port = _parse_host_port(netloc)
    if not slash:
        raise _invalid_url("the repository path is missing (owner/repo)")
    checked = _check_path("/" + path)
    if scheme == "https":
        return GitUrl("https", host, checked, port=port)
    return GitUrl("ssh", host, checked, port=port, user=user)


def _parse_scp_like(url: str) -> GitUrl:
    userinfo, at, rest = url.partition("@")
    if at and ":" in userinfo and "/" not in userinfo:
        raise _invalid_url(
            f"a password does not belong in the URL; use {CREDENTIALS_TOOL} to give a deploy key instead"
        )
    if not at or "/" in userinfo:
        head = url.partition(":")[0]
        if ":" not in url or "/" in head:
            raise _invalid_url("local paths are not allowed: give the URL of a git server (https:// or ssh://)")
        raise _invalid_url("an scp-like SSH URL names the user: git@host:owner/repo.git")
    user = userinfo
    if not _SSH_USER.match(user):
        raise _invalid_url("the SSH user name may hold only letters, digits, '.', '_' and '-'")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0 or rest[end + 1 : end + 2] != ":":
            raise _invalid_url("an IPv6 host is written git@[2001:db8::1]:owner/repo.git")
        host, path = rest[1:end], rest[end + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _invalid_url(f"{_show(host)} is not an IPv6 address") from None
    else:
        host, colon, path = rest.partition(":")
        if not colon or "/" in host:
            raise _invalid_url("an scp-like SSH URL is user@host:path (a ':' after the host)")
        _check_host(host)
    if not path or path.startswith("-"):
        raise _invalid_url("the repository path after ':' is missing or starts with '-'")
    checked = _check_path(path)
    return GitUrl("ssh", host.lower(), checked, user=user, scp_like=True)


# --- refs ----------------------------------------------------------------------------------------------------


def is_full_sha(ref: str) -> bool:
    """A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex characters."""
    return bool(_FULL_SHA.match(ref))


def looks_like_abbreviated_sha(ref: str) -> bool:
    return bool(_ABBREV_SHA.match(ref))


def check_ref(ref: str) -> str:
    """Check a branch, tag, full ref name (refs/heads/main) or full commit SHA; return it (a SHA lowercased),
    or raise InvalidGitSource. Follows git check-ref-format, and refuses a leading '-' (option injection)."""

    def bad(problem: str) -> InvalidGitSource:
        return InvalidGitSource(f"invalid git ref {_show(ref)}: {problem}; {REF_EXAMPLES}")

    if not isinstance(ref, str) or not ref:
        raise InvalidGitSource(f"invalid git ref: it is empty; {REF_EXAMPLES}")
    if len(ref) > REF_MAX:
        raise bad(f"it is {len(ref)} characters; at most {REF_MAX} are allowed")
    if ref.startswith("-"):
        raise bad("it must not start with '-' (git would read it as a command-line option)")
    if _has_control_or_space(ref) or _REF_FORBIDDEN.search(ref):
        raise bad("it must not contain whitespace, control characters or any of ~ ^ : ? * [ \\")
    if re.fullmatch(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}", ref):
        return ref.lower()
    if ".." in ref or "@{" in ref or "//" in ref or ref == "@":
        raise bad("it must not contain '..', '@{' or '//'")
    if ref.startswith("/") or ref.endswith("/") or ref.endswith(".") or ref.endswith(".lock"):
        raise bad("it must not start or end with '/', or end with '.' or '.lock'")
    if any(part.startswith(".") for part in ref.split("/")):
        raise bad("no part of it may start with '.'")
    return ref


def github_repository(url: GitUrl, hosts: Iterable[str]) -> tuple[str, str] | None:
    """(owner, repo) when `url` is an https URL of a repository on a GitHub whose git hosts are `hosts`
    (entries `host` or `host:port`, case-insensitive): its path must be exactly `/owner/repo[.git]`. None
    otherwise (ssh URLs included: an installation token is an https credential)."""
    if url.scheme != "https":
        return None
    names = {h.strip().lower().rstrip(".") for h in hosts if h.strip()}
    if url.host not in names and url.netloc.lower() not in names:
        return None
    parts = url.repo_path.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]
"""Cloud instance metadata endpoints (AWS/GCP/Azure/OpenStack IPv4, AWS IPv6): they hand out credentials."""
