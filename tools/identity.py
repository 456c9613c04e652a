"""`whoami`: who the platform thinks is calling. The first tool an agent should call."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.context import call, tool
from tools.records import PreflightSummary

OPERATOR_SCOPE = "platform:read"
"""Who may see the platform's own state (the cluster preflight): the stdio operator, and tokens created with
`--scope platform:read`; never a tenant's agent by default."""


class WhoAmI(BaseModel):
    tenant: str = Field(description="Tenant every call of this session acts in.")
    subject: str = Field(description="Who is calling, as recorded in the audit log.")
    scopes: list[str] = Field(description="What this credential may do.")
    via: str = Field(description="How the caller was identified: stdio operator, HTTP bearer token, ...")
    apps_domain: str = Field(description="Apps get <app>-<project>-<tenant>.<apps_domain>.")
    preflight: PreflightSummary | None = Field(
        None, description="Operators only: the latest cluster preflight a worker ran at start (missing pieces and "
                          "their fixes); null for everyone else, or before any worker ran it.")


@tool(title="Who am I", scope=None, read_only=True, idempotent=True)
async def whoami() -> WhoAmI:
    """Return the caller's tenant, subject and scopes, and the domain apps are served under."""
    c = call()
    preflight = await c.store.latest_preflight() if c.principal.has(OPERATOR_SCOPE) else None
    return WhoAmI(
        tenant=c.principal.tenant,
        subject=c.principal.subject,
        scopes=sorted(c.principal.scopes),
        via=c.principal.via,
        apps_domain=c.config.apps_domain,
        preflight=preflight,
    )
