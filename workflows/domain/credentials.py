"""Credentials the platform holds for the outside world: `RobotCredentials` (a registry account, e.g. a Harbor
robot) and `GitCredentials` (a token or an SSH deploy key), checked when made and never shown in a repr.

Pure, shared by the git and registry adapters, the build renderer and the tools that store credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.domain.git_urls import GitUrl, _has_control_or_space

# --- registry credentials -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RobotCredentials:
    """A registry account (a Harbor robot): `name` as the registry expects it at login (robot$tenant+builder),
    `secret` its password. The repr never shows the secret; do not pass it through a workflow's history."""

    name: str
    secret: str = field(repr=False)


# --- credentials ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitCredentials:
    """What the platform authenticates to a git server with. Its repr never shows a secret.

    - `token` (https): sent as HTTP Basic `username:token`, which GitHub (username `x-access-token` for App
      installation tokens), GitLab (`oauth2` or any name for project/personal tokens), Gitea and Forgejo accept.
    - `ssh_private_key` (ssh): an OpenSSH private key (a deploy key). `ssh_known_hosts`, when given, pins the
      server's host key (StrictHostKeyChecking=yes); otherwise the first key seen is accepted for that call.
    A credential that does not fit the URL's transport is not used.
    """

    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"
    ssh_private_key: str | None = field(default=None, repr=False)
    ssh_known_hosts: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None and (not self.token or _has_control_or_space(self.token)):
            raise ValueError("the git token is empty or contains whitespace or control characters")
        if not self.username or ":" in self.username or _has_control_or_space(self.username):
            raise ValueError("the git username must be non-empty, without ':' or whitespace")
        if self.ssh_private_key is not None and "PRIVATE KEY" not in self.ssh_private_key:
            raise ValueError("the SSH deploy key is not a PEM/OpenSSH private key (no 'PRIVATE KEY' marker)")

    def __repr__(self) -> str:
        kinds = [k for k, v in (("token", self.token), ("ssh_private_key", self.ssh_private_key)) if v]
        return f"GitCredentials({', '.join(kinds) or 'anonymous'})"

    @classmethod
    def stored(cls, kind: str, username: str, secret: str) -> GitCredentials:
        """The credentials a `git_credentials` row holds, opened: kind `ssh_key` (a deploy key) or `token`."""
        return cls(ssh_private_key=secret) if kind == "ssh_key" else cls(token=secret, username=username)

    def fits(self, url: GitUrl) -> bool:
        """Whether these credentials can be used with `url`'s transport: a token over https, a key over ssh."""
        return bool(self.token if url.scheme == "https" else self.ssh_private_key)

    def secrets(self) -> list[str]:
        """Every secret string, for redaction."""
        out = [s for s in (self.token,) if s]
        if self.ssh_private_key:
            out.extend(line.strip() for line in self.ssh_private_key.splitlines() if len(line.strip()) >= 8)
        return out
