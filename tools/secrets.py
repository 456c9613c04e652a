"""Secrets: write-only environment variables. Values are encrypted at rest, pinned per release by version,
and never returned, logged or audited; only names are shown."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.args import AppName, PlanFlag, ProjectName, check_name
from tools.context import call, tool
from tools.errors import InvalidInput
from tools.lookups import require_app
from tools.plan import PlanReady
from tools.planned import secrets_plan
from tools.releases import check_env, check_environment, seal_secrets
from workflows.domain.env_limits import MAX_VARIABLES
from workflows.domain.specs import AppConfig


class SecretsResult(BaseModel):
    app: str
    version: int = Field(description="The secrets version the next release will pin.")
    names: list[str]
    changed: bool
    next_step: str


async def _change(project: str, app: str, changes: dict[str, str | None], grows: bool, plan: bool = False
                  ) -> SecretsResult:
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    change = await seal_secrets(c, row.id, changes)
    if change.sealed is None or change.names is None:
        current = await c.store.current_secrets(row.id)
        return SecretsResult(app=f"{project}/{app}", version=current.version, names=current.names, changed=False,
                             next_step="Nothing changed.")
    if grows:  # removing never makes it worse, so an app already over the caps can always shrink
        check_environment("values", AppConfig.model_validate(row.spec).env, change.values,
                          whose="with these values the app's env + secrets would hold ")
    if plan:  # sealed above only to know what changes; the ciphertext is dropped, never stored
        raise PlanReady(await secrets_plan(c, row, change.base, change.names, sorted(changes)))
    version = await c.store.add_secret_version(row.id, change.base, change.names, change.sealed,
                                               c.principal.subject)
    return SecretsResult(app=f"{project}/{app}", version=version, names=change.names, changed=True,
                         next_step="Takes effect with the next release: call `deploy` (no arguments needed).")


@tool(title="Set secrets", scope="secrets:write", idempotent=True, secret_args=frozenset({"values"}))
async def set_secrets(
    project: ProjectName,
    app: AppName,
    values: Annotated[dict[str, str | None], Field(
        description=f"NAME -> value, merged in; null removes one. Write-only. Env + secrets: <= {MAX_VARIABLES} "
                    "variables, 256 KiB.")],
    plan: PlanFlag = False,
) -> SecretsResult:
    """Change an app's secret env vars (a new secrets version; the next `deploy` pins it). Never shown again."""
    if not values:
        raise InvalidInput("values", "is empty", "pass at least one NAME: value (or NAME: null to remove it)")
    check_env("values", values)
    return await _change(project, app, dict(values), grows=any(v is not None for v in values.values()), plan=plan)
