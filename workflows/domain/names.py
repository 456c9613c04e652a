"""Names the platform gives things: validation of user-chosen names and the Kubernetes names derived from them.

Pure functions, shared by the tools (to validate input) and the workflows (to name objects), so a name is
decided in exactly one place.
"""

from __future__ import annotations

import hashlib
import re

NAME_MAX = 20
"""Tenant, project and app names: short enough that `<app>-<project>-<tenant>` (62 chars) fits one DNS label
(63), which keeps every platform hostname under one wildcard certificate."""

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def name_problem(value: str, max_len: int = NAME_MAX) -> str | None:
    """Why `value` is not a valid platform name, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > max_len:
        return f"is {len(value)} characters; at most {max_len} are allowed"
    if value != value.lower():
        return "must be lowercase"
    if not _LABEL.match(value):
        return "may hold only a-z, 0-9 and '-', and must start and end with a letter or digit"
    if "--" in value:
        return "must not contain '--'"
    return None


def suggest_name(value: str, max_len: int = NAME_MAX) -> str:
    """A valid name close to `value`, offered in error messages."""
    s = re.sub(r"[^a-z0-9-]+", "-", value.lower())
    s = re.sub(r"-{2,}", "-", s).strip("-")[:max_len].strip("-")
    return s or "app"


def env_name_problem(value: str) -> str | None:
    if not _ENV_NAME.match(value):
        return "must match [A-Za-z_][A-Za-z0-9_]* (a POSIX environment variable name)"
    if len(value) > 256:
        return "is longer than 256 characters"
    return None


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:6]


def namespace_name(tenant: str, project: str) -> str:
    """`dm-<tenant>-<project>-<hash>`: the hash of the pair keeps tenant "a-b"/project "c" and tenant "a"/
    project "b-c" in different namespaces, so no tenant can take another's namespace by choosing names."""
    return f"dm-{tenant}-{project}-{_short_hash(tenant, project)}"


def app_hostname(app: str, project: str, tenant: str, apps_domain: str) -> str:
    """`<app>-<project>-<tenant>.<apps_domain>`: one label deep so the wildcard certificate covers it."""
    label = f"{app}-{project}-{tenant}"
    if len(label) > 63:  # cannot happen with NAME_MAX names; guards a changed NAME_MAX
        raise ValueError(f"hostname label {label!r} is longer than 63 characters")
    return f"{label}.{apps_domain}"


def release_name(app: str, seq: int) -> str:
    """The Deployment of release `seq` of `app`: `<app>-r<seq>`."""
    return f"{app}-r{seq}"
