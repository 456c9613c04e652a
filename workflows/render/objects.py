"""The metadata block every rendered object shares (name, namespace, labels), so each renderer writes it the
same way."""

from __future__ import annotations

from typing import Any


def meta(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def restricted_container() -> dict[str, Any]:
    """A container's securityContext under the `restricted` Pod Security Standard, with a read-only root: what
    every container the platform renders runs with (a fresh dict: callers' objects are mutated by the apply)."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
