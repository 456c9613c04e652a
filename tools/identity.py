"""`whoami`: who the platform thinks is calling. The first tool an agent should call. The operator also sees
how the platform's own backups stand (a failed or missing backup must be seen, not found out at restore time);
a tenant's agent never does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from tools.context import call, tool
from tools.records import PreflightSummary

OPERATOR_SCOPE = "platform:read"
"""Who may see the platform's own state (the cluster preflight): the stdio operator, and tokens created with
`--scope platform:read`; never a tenant's agent by default."""


class BackupHealth(BaseModel):
    last_success_at: datetime | None = Field(description="When the last successful backup started; null: none yet.")
    last_success_name: str | None = Field(description="That archive's name at its target.")
    last_failure_at: datetime | None = Field(description="When the last failed backup started; null: none.")
    last_failure_error: str | None = Field(description="What that failure said.")
    warning: str | None = Field(description="Set when no backup succeeded yet, or the last run failed.")


class WhoAmI(BaseModel):
    tenant: str = Field(description="Tenant every call of this session acts in.")
    subject: str = Field(description="Who is calling, as recorded in the audit log.")
    scopes: list[str] = Field(description="What this credential may do.")
    via: str = Field(description="How the caller was identified: stdio operator, HTTP bearer token, ...")
    apps_domain: str = Field(description="Apps get <app>-<project>-<tenant>.<apps_domain>.")
    preflight: PreflightSummary | None = Field(
        None, description="Operators only: the latest cluster preflight a worker ran at start (missing pieces and "
                          "their fixes); null for everyone else, or before any worker ran it.")
    backups: BackupHealth | None = Field(None, description="The operator only: the platform's last backups.")


async def _backup_health() -> BackupHealth:
    c = call()
    ok, failed = await c.store.last_backup_runs()
    max_age = timedelta(hours=c.config.backup_max_age_hours)
    warning = None
    if ok is None:
        warning = "no backup has succeeded yet: run `deploy-mcp backup create` (docs/operations.md#backups)"
    elif failed is not None and failed.started_at > ok.started_at:
        warning = "the last backup failed; see `deploy-mcp backup list`"
    elif datetime.now(UTC) - ok.started_at > max_age:
        warning = (f"the last successful backup is older than {c.config.backup_max_age_hours:g} hours: is the "
                   "backup CronJob running? (`kubectl get cronjob deploy-mcp-backup`)")
    return BackupHealth(
        last_success_at=ok.started_at if ok else None, last_success_name=ok.name if ok else None,
        last_failure_at=failed.started_at if failed else None, last_failure_error=failed.error if failed else None,
        warning=warning)


@tool(title="Who am I", scope=None, read_only=True, idempotent=True)
async def whoami() -> WhoAmI:
    """Your tenant, subject, scopes and the apps' domain. Call it first."""
    c = call()
    preflight = await c.store.latest_preflight() if c.principal.has(OPERATOR_SCOPE) else None
    return WhoAmI(
        tenant=c.principal.tenant,
        subject=c.principal.subject,
        scopes=sorted(c.principal.scopes),
        via=c.principal.via,
        apps_domain=c.config.apps_domain,
        preflight=preflight,
        backups=await _backup_health() if c.principal.has(OPERATOR_SCOPE) else None,
    )
