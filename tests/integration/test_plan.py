"""`plan=true` (decision 0021) over a real MCP client, on a real Postgres and a real Temporal dev server: every
mutating tool answers what would change, writes no row but its one audit row (shown as `planned`), and starts
no workflow (Temporal's visibility of the server's task queue, which no worker polls, stays empty). No cluster
is configured here, so plans say `validated: false` and why; tests/integration/test_plan_on_testbed.py has the
API server's dry run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import StandInImages
from tools.context import PlatformConfig, Principal
from tools.plan import NO_CLUSTER
from workflows.domain.secretbox import SecretBox

SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write", "domains:write",
                    "databases:write", "audit:read"})
KEY = Fernet.generate_key()
SECRET = "hunter2-never-shown"


@dataclass
class Platform:
    store: PgStore
    temporal: TemporalClient
    queue: str
    tenant: str

    def client(self) -> Client:
        deps = ServerDeps(store=self.store, config=PlatformConfig(apps_domain="apps.test"),
                          workflows=TemporalWorkflows(self.temporal, self.queue), images=StandInImages(),
                          secretbox=SecretBox(KEY))
        return Client(build_server(deps, transport="memory",
                                   principal=Principal(self.tenant, "agent", SCOPES, "memory")))

    async def counts(self) -> dict[str, int]:
        """Rows of every table of the store but the audit trail."""
        async with self.store.pool.connection() as conn:
            tables = [r["table_name"] for r in await (await conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' AND table_name <> 'audit_events'")).fetchall()]
            return {t: (await (await conn.execute(f'SELECT count(*) AS n FROM "{t}"')).fetchone())["n"]  # type: ignore[index]
                    for t in tables}

    async def audit_rows(self) -> list[dict[str, Any]]:
        async with self.store.pool.connection() as conn:
            return await (await conn.execute("SELECT tool, outcome, arguments FROM audit_events WHERE tenant = %s "
                                              "ORDER BY id", (self.tenant,))).fetchall()

    async def workflows_started(self) -> int:
        return len([w async for w in self.temporal.list_workflows(f"TaskQueue = '{self.queue}'")])


@pytest.fixture
async def platform(store: PgStore, temporal_address: str) -> Platform:
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    # no worker polls this queue: a started workflow stays there, visible
    return Platform(store, temporal, f"plan-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:6]}")


WEB = {"project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"}, "port": 8080,
       "env": {"LOG": "info"}, "wait_seconds": 0}

PLANS: list[tuple[str, dict[str, Any]]] = [
    ("create_app", {"project": "shop", "name": "api", "source": {"image": "registry.test/team/api:v2"}, "port": 80,
                    "secrets": {"TOKEN": SECRET}, "volumes": [{"name": "data", "size_gib": 1, "mount_path": "/data"}],
                    "database": {}, "domains": ["api.example.com"]}),
    ("deploy", {"project": "shop", "app": "web", "env": {"LOG": "debug"}, "secrets": {"TOKEN": SECRET}}),
    ("scale", {"project": "shop", "app": "web", "replicas": 3}),
    ("volume", {"action": "create", "project": "shop", "volume": "cache", "size_gib": 2}),
    ("domain", {"action": "add", "hostname": "shop.example.com", "project": "shop", "app": "web"}),
    ("database", {"action": "create", "project": "shop", "name": "orders"}),
    ("set_secrets", {"project": "shop", "app": "web", "values": {"TOKEN": SECRET}}),
    ("set_git_credentials", {"host": "git.example.com", "token": SECRET}),
    ("delete_app", {"project": "shop", "app": "web", "confirm": "shop/web"}),
]


async def test_plans_write_nothing_but_their_audit_row_and_start_no_workflow(platform: Platform) -> None:
    async with platform.client() as c:
        ok(await c.call_tool("create_app", WEB))  # the app the other plans change (its release stays pending)
        for _ in range(50):  # visibility is eventually consistent: wait until it shows the one real start
            if await platform.workflows_started() == 1:
                break
            await asyncio.sleep(0.1)
        assert await platform.workflows_started() == 1
        before, audited = await platform.counts(), len(await platform.audit_rows())
        for tool, args in PLANS:
            plan = ok(await c.call_tool(tool, args | {"plan": True}))
            assert plan["planned"] is True and plan["tool"] == tool, plan
            assert plan["rows"], plan
            if tool == "delete_app":
                assert {o["action"] for o in plan["objects"]} == {"delete"}, plan
            elif tool not in ("set_secrets", "scale", "set_git_credentials"):  # rows only (nothing serves yet)
                assert plan["objects"] and plan["validated"] is False and plan["reason"] == NO_CLUSTER, plan
            assert SECRET not in json.dumps(plan)
            assert await platform.counts() == before, tool
            rows = await platform.audit_rows()
            assert len(rows) == audited + 1 and rows[-1]["tool"] == tool and rows[-1]["arguments"]["plan"] is True
            audited += 1
        await asyncio.sleep(1.0)  # a workflow started by a plan would be visible by now
        assert await platform.workflows_started() == 1
        log = ok(await c.call_tool("get_audit_log", {"limit": len(PLANS)}))
        assert [e["outcome"] for e in log["entries"]] == ["planned"] * len(PLANS)
        assert SECRET not in json.dumps(log)


async def test_a_create_plan_lists_the_release_objects_from_the_renderers(platform: Platform) -> None:
    async with platform.client() as c:
        plan = ok(await c.call_tool("create_app", PLANS[0][1] | {"plan": True}))
    refs = [o["ref"] for o in plan["objects"]]
    ns = next(r for r in refs if r.startswith("Namespace/")).split("/")[1]
    assert {f"Secret/{ns}/api-r1-env", f"Deployment/{ns}/api-r1", f"Service/{ns}/api", f"Ingress/{ns}/api",
            f"PersistentVolumeClaim/{ns}/vol-data"} <= set(refs), refs
    secret = next(o for o in plan["objects"] if o["ref"] == f"Secret/{ns}/api-r1-env")
    assert set(secret["object"]["data"]) >= {"TOKEN", "DATABASE_URL"}
    assert set(secret["object"]["data"].values()) == {"(redacted)"}
    dep = next(o for o in plan["objects"] if o["ref"] == f"Deployment/{ns}/api-r1")["object"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("registry.test/team/api@sha256:")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in dep["spec"]["template"]["spec"].get("volumes", [])
              if "persistentVolumeClaim" in v]
    assert claims == ["vol-data"], dep  # mounted as the real release would mount it
    tables = {(r["table"], r["action"]) for r in plan["rows"]}
    assert {("apps", "insert"), ("deployments", "insert"), ("secret_versions", "insert"), ("volumes", "insert"),
            ("databases", "insert"), ("domains", "insert")} <= tables


async def test_a_plan_is_refused_as_the_real_call_would_be(platform: Platform) -> None:
    before = await platform.counts()
    async with platform.client() as c:
        r = await c.call_tool("volume", {"action": "resize", "project": "shop", "volume": "none", "size_gib": 2,
                                         "plan": True})
        assert r.is_error
        r = await c.call_tool("create_app", WEB | {"name": "Bad_Name", "plan": True})
        assert r.is_error and "name" in r.content[0].text  # type: ignore[union-attr]
        r = await c.call_tool("volume", {"action": "snapshot", "project": "shop", "volume": "x", "plan": True})
        assert r.is_error and "plan" in r.content[0].text  # type: ignore[union-attr]
    assert await platform.counts() == before
    assert await platform.workflows_started() == 0


async def test_a_delete_plan_lists_the_previews_it_would_delete(platform: Platform) -> None:
    async with platform.client() as c:
        ok(await c.call_tool("create_app", WEB))
        ok(await c.call_tool("create_app", WEB | {"name": "web-pr3"}))
        web = await platform.store.get_app(platform.tenant, "shop", "web")
        pr3 = await platform.store.get_app(platform.tenant, "shop", "web-pr3")
        assert web is not None and pr3 is not None
        await platform.store.set_preview_app(web.id, 3, pr3.id)
        await platform.store.connect_push(web.id, uuid.uuid4().hex, "main", True, False, b"sealed", "agent")
        before = await platform.counts()
        plan = ok(await c.call_tool("delete_app", {"project": "shop", "app": "web", "confirm": "shop/web",
                                                   "plan": True}))
    rows = {(r["table"], r["action"], r["key"]): r["fields"] for r in plan["rows"]}
    assert rows[("apps", "update", "shop/web-pr3")] == {"status": "deleting", "preview_of": "shop/web",
                                                        "pull_request": 3}, plan
    assert ("preview_apps", "delete", "shop/web#3") in rows and ("push_connections", "delete", "shop/web") in rows
    refs = {o["ref"] for o in plan["objects"]}
    assert {f"Deployment/{web.namespace}/web-r*", f"Deployment/{web.namespace}/web-pr3-r*",
            f"Ingress/{web.namespace}/web-pr3"} <= refs, refs
    assert {o["action"] for o in plan["objects"]} == {"delete"}
    assert await platform.counts() == before
    assert (await platform.store.get_app_by_id(pr3.id)).status != "deleting"  # type: ignore[union-attr]
