"""`whoami`: who the platform thinks is calling. The first tool an agent should call."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.context import call, tool


class WhoAmI(BaseModel):
    tenant: str = Field(description="Tenant every call of this session acts in.")
    subject: str = Field(description="Who is calling, as recorded in the audit log.")
    scopes: list[str] = Field(description="What this credential may do.")
    via: str = Field(description="How the caller was identified: stdio operator, HTTP bearer token, ...")
    apps_domain: str = Field(description="Apps get <app>-<project>-<tenant>.<apps_domain>.")


@tool(title="Who am I", scope=None, read_only=True, idempotent=True)
async def whoami() -> WhoAmI:
    """Return the caller's tenant, subject and scopes, and the domain apps are served under."""
    c = call()
    return WhoAmI(
        tenant=c.principal.tenant,
        subject=c.principal.subject,
        scopes=sorted(c.principal.scopes),
        via=c.principal.via,
        apps_domain=c.config.apps_domain,
    )
