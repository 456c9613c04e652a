"""MCP prompts: ready-made instructions an agent (or its user) picks to drive the tools well.

Plain functions returning the user message; the server registers every entry of `PROMPTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def deploy_image(project: str, name: str, image: str, port: str = "8080") -> str:
    return f"""Deploy the container image `{image}` as app `{name}` in project `{project}` (port {port}).

1. Call `whoami` to confirm the tenant and that you have `apps:write`.
2. Call `create_app` with project="{project}", name="{name}", source={{"image": "{image}"}}, port={port}.
   Pass secrets only through `secrets` (never in `env`), and an `idempotency_key` so a retry is safe.
3. If the result is not `done`, follow it with `get_deployment` until the phase is final.
4. On success report the URL. On failure go to the `debug-failed-deploy` steps: `diagnose_deployment`
   with the deployment id, then fix and `deploy` again."""


def debug_failed_deploy(project: str, app: str, deployment_id: str = "") -> str:
    target = f"deployment `{deployment_id}`" if deployment_id else "the app's most recent failed release"
    return f"""A deploy of `{project}/{app}` failed. Diagnose it, then fix it or roll back safely.

1. If you have no deployment id, call `list_deployments` (project="{project}", app="{app}") and take {target}.
   Note which release is `serving`: a failed release never took traffic, so the app is still up on it.
2. Call `diagnose_deployment` with the id. Read `cause.reason`, the evidence, `logs` and `next_step`.
   - ImagePullFailed: the image reference is wrong or not pushed. Fix the reference and `deploy`.
   - CrashLoop / OOMKilled: read the log lines (and `get_runtime_logs` for more). Fix the code or raise
     `resources.memory_mib`, then `deploy`.
   - ProbeFailed: the app does not answer `health_check`; fix the path/port or the app.
   - QuotaExceeded / Unschedulable: lower `replicas` or `resources`.
3. If users are affected and the fix is not quick, call `rollback` (project="{project}", app="{app}"): it
   restores the last healthy release's exact image, config and secrets, instantly inside the window.
   Never roll back to a release that never became healthy.
4. After any change, confirm with `get_app` that the serving release is the one you expect."""


def safe_rollback(project: str, app: str) -> str:
    return f"""Roll `{project}/{app}` back safely.

1. `list_deployments` (project="{project}", app="{app}"): find the serving release and the last one with
   phase `succeeded` before it. Check its image digest and secrets version are what you want back.
2. If a deploy is still rolling out, `rollback` without `to` cancels it and keeps the serving release.
3. Otherwise call `rollback` with `to` = that deployment id (or without `to` for the previous healthy one).
4. Confirm with `get_app` and `get_runtime_logs` that the app serves and logs no errors."""


@dataclass(frozen=True)
class PromptSpec:
    fn: Callable[..., str]
    name: str
    title: str
    description: str


PROMPTS = [
    PromptSpec(deploy_image, "deploy-image", "Deploy an image",
               "Create an app from a container image, safely and idempotently."),
    PromptSpec(debug_failed_deploy, "debug-failed-deploy", "Debug a failed deploy",
               "A deploy failed: diagnose it, then fix it or roll back safely."),
    PromptSpec(safe_rollback, "safe-rollback", "Roll back safely",
               "Restore the last healthy release without guessing."),
]
