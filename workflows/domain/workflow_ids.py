"""The workflow ids: each one is the business key of what its workflow does, so starting it again (with
USE_EXISTING or REJECT_DUPLICATE) never runs the same work twice.

Here, not beside the workflow definitions, because the tools name workflows without importing them: the
definitions import their activity classes, which the tools must never load.
"""

from __future__ import annotations

import hashlib
from uuid import UUID


def deploy_workflow_id(tenant: str, project: str, app: str, seq: int) -> str:
    """One release of an app (a rollback runs under its own prefix, see `tools.rollback`)."""
    return f"deploy/{tenant}/{project}/{app}/r{seq}"


def build_workflow_id(tenant: str, project: str, app: str, sha: str, subdir: str = "") -> str:
    """One commit (and app directory) of an app's repository: a commit built before is not built again."""
    base = f"build/{tenant}/{project}/{app}/{sha}"
    return base + (f"/{hashlib.sha256(subdir.encode()).hexdigest()[:8]}" if subdir.strip("/") else "")


def delete_workflow_id(tenant: str, project: str, app: str, app_id: UUID) -> str:
    """Deleting one app: the app id keeps a later app of the same name apart."""
    return f"delete/{tenant}/{project}/{app}/{app_id}"


def volume_workflow_id(tenant: str, project: str, volume: str, op: str, key: str) -> str:
    """One change to a volume: the same request retried never runs twice."""
    return f"volume/{tenant}/{project}/{volume}/{op}/{key}"


def reconcile_workflow_id(app_id: UUID) -> str:
    """One app's reconcile loop, keyed by the app id: a later app of the same name is another app."""
    return f"reconcile/{app_id}"


def reconcile_sweep_workflow_id(task_queue: str) -> str:
    """The install's sweeper: one per task queue (one install), so two installs on one Temporal never share it."""
    return f"reconcile-sweep/{task_queue}"


def scale_workflow_id(app_id: UUID, key: str) -> str:
    """One change of an app's scale: `key` is the caller's idempotency key (or a fresh one per call)."""
    return f"scale/{app_id}/{key}"
def database_workflow_id(tenant: str, project: str, database: str, op: str, key: str) -> str:
    """One change to a database: the same request retried never runs twice."""
    return f"database/{tenant}/{project}/{database}/{op}/{key}"
def domain_workflow_id(domain_id: UUID, token: str) -> str:
    """One per claim of a hostname: a takeover (new token) never signals the old claim's workflow."""
    return f"domain/{domain_id}/{token[:12]}"
