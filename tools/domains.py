"""Custom domains: an app's own hostnames (shop.example.com), verified by DNS and served with their own
certificate. `domains` reads them; `domain(action=add|verify|remove)` changes them.

Adding returns the exact records the owner must create; a durable workflow (workflows/domains.py) checks DNS
with backoff and moves the status along pending_dns -> issuing -> active (or failed, with the reason and fix).
A hostname belongs to one app of one tenant: another live claim refuses it, and only the claim whose token is
in DNS can verify, so adding someone else's name gains nothing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.args import PlanFlag, check_name
from tools.context import CallContext, call, tool
from tools.errors import Conflict, InvalidInput, NotFound
from tools.lookups import require_app
from tools.plan import PlannedRow, PlanReady, make_plan
from tools.planned import domain_add_plan
from tools.records import AppRecord, DomainRecord
from workflows.domain.domain_contract import DomainInput
from workflows.domain.domains import DomainNameError, normalize_hostname, required_records
from workflows.domain.workflow_ids import domain_workflow_id
from workflows.render.domains import domain_object_name, tls_secret_name

Hostname = Annotated[str, Field(description="e.g. shop.example.com (no wildcards).", max_length=253)]

NEXT_STEP = {
    "verifying": "Wait a few seconds, then call `domains` again.",
    "pending_dns": "Create the records in `records` at your DNS provider; verification retries by itself.",
    "issuing": "Wait: the certificate is being issued (usually under a minute).",
    "active": "Serving over HTTPS.",
    "failed": "Fix what `detail` says, then call `domain` with action=verify.",
}


def _untitled(schema: dict[str, Any], _: type) -> None:
    """Drop the titles pydantic derives from field names: they repeat the name, and tools/list is on a budget."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class DomainView(BaseModel):
    model_config = ConfigDict(json_schema_extra=_untitled)
    hostname: str
    app: str = Field(description="project/app.")
    status: str = Field(description="verifying, pending_dns, issuing, active or failed.")
    detail: str = ""
    records: list[str] = Field(description="'TYPE name value' to create and keep.")
    expires: str = ""
    next_step: str


class DomainList(BaseModel):
    model_config = ConfigDict(json_schema_extra=_untitled)
    domains: list[DomainView]


def domain_view(c: CallContext, d: DomainRecord) -> DomainView:
    records = required_records(d.hostname, d.verification_token or "", _edge(c), c.config.edge_addresses)
    return DomainView(
        hostname=d.hostname, app=f"{d.project}/{d.app}", status=d.status, detail=d.detail or "",
        records=[f"{r.type} {r.name} {r.value}" for r in records],
        expires=d.cert_not_after.isoformat() if d.cert_not_after else "",
        next_step=d.fix or NEXT_STEP.get(d.status, "Call `domains`."))


def _edge(c: CallContext) -> str:
    return c.config.edge_name or f"edge.{c.config.apps_domain}"


def check_hostname(c: CallContext, field: str, raw: str) -> str:
    try:
        return normalize_hostname(raw, c.config.apps_domain)
    except DomainNameError as e:
        raise InvalidInput(field, str(e)) from e


def _hostname(c: CallContext, raw: str) -> str:
    return check_hostname(c, "hostname", raw)


def domain_input(c: CallContext, d: DomainRecord, remove: bool = False) -> DomainInput:
    return DomainInput(
        domain_id=d.id, token=d.verification_token or "", tenant=d.tenant, project=d.project, app=d.app,
        namespace=d.namespace, hostname=d.hostname,
        deadline=d.verify_deadline or datetime.now(UTC) + timedelta(hours=c.config.domain_verify_hours),
        max_backoff_seconds=c.config.domain_max_backoff_seconds, recheck_seconds=c.config.domain_recheck_seconds,
        remove=remove)


async def add_domain(c: CallContext, app: AppRecord, hostname: str) -> DomainRecord:
    """Claim `hostname` for `app` and start its verification; the app's own claim again is returned as is."""
    host = _hostname(c, hostname)
    mine = [d for d in await c.store.list_domains(c.principal.tenant, app.project, app.name) if d.hostname != host]
    if len(mine) >= c.config.max_domains_per_app:
        raise Conflict(f"The app {app.project}/{app.name} has {len(mine)} custom domains, the most allowed.",
                       hint="Remove one with `domain` action=remove, or ask the operator (dns.max_domains_per_app).")
    workflows = c.require_workflows()
    deadline = datetime.now(UTC) + timedelta(hours=c.config.domain_verify_hours)
    d, created = await c.store.add_domain(app.id, host, "deploy-mcp-verify=" + secrets.token_urlsafe(24),
                                          deadline, tls_secret_name(app.name, host))
    wf = domain_workflow_id(d.id, d.verification_token or "")
    c.audit.workflow_id = wf
    if created or d.status == "failed":
        await workflows.signal_domain(wf, domain_input(c, d), "check_now")
    return d


@tool(title="Domains", scope="apps:read", read_only=True, idempotent=True)
async def domains(hostname: Annotated[str | None, Field(description="Only this one.", max_length=253)] = None
                  ) -> DomainList:
    """Your custom domains: status, what is missing, the DNS records to create, certificate expiry."""
    c = call()
    if hostname is not None:
        d = await c.store.get_domain(c.principal.tenant, _hostname(c, hostname))
        if d is None:
            raise NotFound("domain", hostname, hint="Call `domains`; add one with `domain` action=add.")
        return DomainList(domains=[domain_view(c, d)])
    return DomainList(domains=[domain_view(c, d) for d in await c.store.list_domains(c.principal.tenant, None, None)])


@tool(title="Domain", scope="domains:write", destructive=True, idempotent=True, open_world=True)
async def domain(action: Literal["add", "verify", "remove"], hostname: Hostname,
                 project: Annotated[str, Field(description="add: the app's project.", max_length=200)] = "",
                 app: Annotated[str, Field(description="add: the app.", max_length=200)] = "",
                 plan: PlanFlag = False) -> DomainView:
    """add (with project, app): give an app a custom domain; returns the DNS records to create. verify: check
    DNS now. remove: delete it with its certificate and routing."""
    c = call()
    if action == "add":
        if not project or not app:
            raise InvalidInput("app" if project else "project", "is required to add a domain",
                               "name the app that should serve it")
        check_name("project", project)
        check_name("app", app)
        row = await require_app(c, project, app)
        if plan:
            raise PlanReady(await domain_add_plan(c, row, _hostname(c, hostname)))
        return domain_view(c, await add_domain(c, row, hostname))
    host = _hostname(c, hostname)
    d = await c.store.get_domain(c.principal.tenant, host)
    if d is None:
        raise NotFound("domain", host, hint="Call `domains`; add one with `domain` action=add.")
    if plan:  # verify changes a status and checks DNS; remove deletes what the domain owns
        raise PlanReady(await make_plan(c, "domain", [PlannedRow(
            table="domains", action="update" if action == "verify" else "delete", key=host,
            fields={"status": "verifying"} if action == "verify" else {})],
            deletes=[] if action == "verify" else [f"Ingress/{d.namespace}/{domain_object_name(d.app, host)}",
                                                   f"Certificate/{d.namespace}/{domain_object_name(d.app, host)}",
                                                   f"Secret/{d.namespace}/{d.tls_secret or ''}"]))
    wf = domain_workflow_id(d.id, d.verification_token or "")
    c.audit.workflow_id = wf
    if action == "verify":
        if d.status == "failed":  # a fresh deadline: the owner says the records are there now
            deadline = datetime.now(UTC) + timedelta(hours=c.config.domain_verify_hours)
            await c.store.set_domain_status(d.id, d.verification_token or "", status="verifying",
                                            detail=None, fix=None, verify_deadline=deadline)
            d = d.model_copy(update={"verify_deadline": deadline, "status": "verifying"})
        await c.require_workflows().signal_domain(wf, domain_input(c, d), "check_now")
        return domain_view(c, d)
    await c.require_workflows().signal_domain(wf, domain_input(c, d, remove=True), "remove")
    c.audit.k8s_refs = [f"Ingress/{d.namespace}", f"Certificate/{d.namespace}", f"Secret/{d.namespace}"]
    view = domain_view(c, d)
    return view.model_copy(update={"next_step": "Removal started: its Ingress, Certificate and Secret are deleted; "
                                                "`domains` stops listing it in a few seconds."})
