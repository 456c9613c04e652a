"""Observed status through an MCP client (in-process, `auto` and `legacy`) on a real Postgres: with the
reconciler on, `get_app`, `list_apps` and `get_deployment` report what its last pass recorded — `degraded`
with the reason while the serving release is not what the cluster shows, `running` again once a pass sees it
healthy, the observation itself (`observed`) with the last repair — and the platform's repair rows are in the
tenant's audit log. Without the reconciler the recorded status stands."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tests.support.platform import ok
from tools.context import PlatformConfig, Principal
from tools.records import NewRelease
from workflows.domain.phases import Phase
from workflows.domain.reconcile_contract import Observation
from workflows.domain.secretbox import SecretBox

ALL = frozenset({"apps:read", "apps:write", "audit:read"})
pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])


def server_for(store: PgStore, reconcile: bool = True) -> Any:
    config = PlatformConfig(apps_domain="apps.test", reconcile_enabled=reconcile, reconcile_stale_seconds=90)
    deps = ServerDeps(store=store, config=config, secretbox=SecretBox(Fernet.generate_key().decode()))
    return build_server(deps, transport="memory", principal=Principal("acme", "alice", ALL, "memory"))


async def serving_app(store: PgStore) -> tuple[Any, Any]:
    claim = await store.create_release(NewRelease(
        tenant="acme", project="shop", app="web", hostname="web-shop-acme.apps.test", create=True,
        config={"port": 8080}, source={"image": "r/web:1"}, image="r/web", image_digest="sha256:" + "c" * 64,
        created_by="alice", workflow_id_prefix="deploy/acme/shop/web/r"))
    await store.finish_deployment(claim.deployment.id, claim.app.id, Phase.SUCCEEDED, True, None)
    return claim.app, claim.deployment


async def test_a_degraded_observation_is_reported_until_a_healthy_one(store: PgStore, mode: str) -> None:
    app, d = await serving_app(store)
    ns = app.namespace
    await store.record_observation(Observation(
        app_id=app.id, release="web-r1", desired_replicas=1, drift=[f"Deployment/{ns}/web-r1 is missing"],
        repaired=[f"Deployment/{ns}/web-r1"]))
    await store.record_platform_audit("acme", "reconcile", {"project": "shop", "app": "web",
                                                            "drift": [f"Deployment/{ns}/web-r1 is missing"]},
                                      [f"Deployment/{ns}/web-r1"], workflow_id=f"reconcile/{app.id}")
    async with Client(server_for(store), mode=mode) as c:
        shown = ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
        listed = ok(await c.call_tool("apps", {}))["apps"]
        detail = ok(await c.call_tool("deployments", {"deployment_id": str(d.id)}))
        log = ok(await c.call_tool("get_audit_log", {"tool": "reconcile"}))["entries"]
    reason = f"drift found (re-applied): Deployment/{ns}/web-r1 is missing"
    assert (shown["status"], shown["status_reason"]) == ("degraded", reason)
    assert (listed[0]["status"], listed[0]["status_reason"]) == ("degraded", reason)
    assert (detail["app_status"], detail["status_reason"]) == ("degraded", reason)
    observed = shown["observed"]
    assert observed["release"] == "web-r1" and observed["pods_ready"] is False
    assert observed["repaired"] == observed["last_repaired"] == [f"Deployment/{ns}/web-r1"]
    assert observed["last_repair_at"] is not None and detail["observed"] == observed
    assert [(e["principal"], e["k8s_refs"]) for e in log] == [("platform", [f"Deployment/{ns}/web-r1"])]

    await store.record_observation(Observation(
        app_id=app.id, release="web-r1", desired_replicas=1, ready_replicas=1, serving_ready=True,
        service_points_at_serving=True))
    async with Client(server_for(store), mode=mode) as c:
        shown = ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
    assert (shown["status"], shown["status_reason"]) == ("running", None)
    assert shown["observed"]["repaired"] == [] and shown["observed"]["last_repaired"] == [f"Deployment/{ns}/web-r1"]


async def test_without_the_reconciler_the_record_stands(store: PgStore, mode: str) -> None:
    app, _ = await serving_app(store)
    await store.record_observation(Observation(app_id=app.id, release="web-r1", desired_replicas=1))
    async with Client(server_for(store, reconcile=False), mode=mode) as c:
        shown = ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
    assert shown["status"] == "running" and shown["status_reason"] is None
