"""The read tools through an MCP client (in-process, both `auto` and `legacy` modes) on a real Postgres:
whoami, list_projects, list_apps, get_app, get_audit_log; strict arguments, scopes, tenant isolation, and
one audit row per call, refused calls included, with secret-looking arguments redacted."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client
from psycopg.types.json import Jsonb

from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal
from workflows.domain.names import app_hostname

ALL = frozenset(ALL_SCOPES)
pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])


def server_for(store: PgStore, tenant: str = "acme", scopes: frozenset[str] = ALL, subject: str = "alice") -> Any:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"))
    return build_server(deps, transport="memory", principal=Principal(tenant, subject, scopes, "memory"))


async def seed_app(store: PgStore, tenant: str, project: str, app: str) -> None:
    p = await store.ensure_project(tenant, project)
    async with store.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO apps (project_id, name, spec, hostname, status) VALUES (%s, %s, %s, %s, 'running')",
            (p.id, app, Jsonb({"port": 8080, "replicas": 1, "env": {"LOG_LEVEL": "debug"}}),
             app_hostname(app, project, tenant, "apps.test")),
        )


async def audit_rows(store: PgStore) -> list[dict[str, Any]]:
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM audit_events ORDER BY id")
        return await cur.fetchall()


async def test_tools_are_listed_with_schemas_and_annotations(store: PgStore, mode: str) -> None:
    async with Client(server_for(store), mode=mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    reads = {"whoami", "apps", "get_audit_log", "deployments", "logs", "volumes", "builds", "app_metrics",
             "databases", "domains"}
    writes = {"create_app", "deploy", "rollback", "delete_app", "set_secrets", "set_git_credentials", "volume",
              "scale", "database", "domain", "push_deploys"}
    assert set(tools) == reads | writes
    destructive = {"delete_app", "volume", "database", "domain"}  # domain: its action=remove
    for t in tools.values():
        assert t.output_schema is None, t.name  # decision 0017: results are documented in docs/tools/
        assert t.input_schema.get("additionalProperties") is False, t.name
        assert t.annotations is not None, t.name
        assert t.annotations.read_only_hint is (t.name in reads), t.name
        assert t.annotations.destructive_hint is (t.name in destructive), t.name
        assert t.description, t.name


async def test_whoami_reports_the_principal(store: PgStore, mode: str) -> None:
    async with Client(server_for(store, scopes=frozenset({"apps:read"})), mode=mode) as c:
        r = await c.call_tool("whoami", {})
    assert not r.is_error
    assert r.structured_content == {"tenant": "acme", "subject": "alice", "scopes": ["apps:read"],
                                    "via": "memory", "apps_domain": "apps.test", "preflight": None,
                                    "backups": None}
    rows = await audit_rows(store)
    assert [(x["tool"], x["outcome"], x["tenant"], x["principal"]) for x in rows] == [
        ("whoami", "ok", "acme", "alice")]


async def test_apps_and_projects_are_scoped_to_the_tenant(store: PgStore, mode: str) -> None:
    await seed_app(store, "acme", "shop", "web")
    await seed_app(store, "acme", "shop", "api")
    await seed_app(store, "other", "shop", "web")
    async with Client(server_for(store), mode=mode) as c:
        projects = (await c.call_tool("apps", {})).structured_content
        apps = (await c.call_tool("apps", {"project": "shop"})).structured_content
        app = await c.call_tool("apps", {"project": "shop", "app": "web"})
        missing = await c.call_tool("apps", {"project": "shop", "app": "nope"})
    assert projects is not None and [p["name"] for p in projects["projects"]] == ["shop"]
    assert projects["projects"][0]["apps"] == 2
    assert apps is not None and [a["name"] for a in apps["apps"]] == ["api", "web"]
    assert apps["apps"][1]["url"] == "https://web-shop-acme.apps.test"
    assert not app.is_error and app.structured_content is not None
    assert app.structured_content["env_names"] == ["LOG_LEVEL"]
    assert "debug" not in str(app.structured_content)  # env values are not shown
    assert missing.is_error and "No app named 'shop/nope'" in missing.content[0].text  # type: ignore[union-attr]
    async with Client(server_for(store, tenant="other"), mode=mode) as c:
        theirs = (await c.call_tool("apps", {})).structured_content
    assert theirs is not None and [a["name"] for a in theirs["apps"]] == ["web"]


async def test_refused_calls_are_audited_and_say_the_fix(store: PgStore, mode: str) -> None:
    async with Client(server_for(store, scopes=frozenset({"apps:read"})), mode=mode) as c:
        bad_name = await c.call_tool("apps", {"project": "Shop", "app": "web"})
        unknown = await c.call_tool("apps", {"projekt": "shop"})
        no_scope = await c.call_tool("get_audit_log", {})
        out_of_range = await c.call_tool("apps", {"project": 5})
    texts = [r.content[0].text for r in (bad_name, unknown, no_scope, out_of_range)]  # type: ignore[union-attr]
    assert all(r.is_error for r in (bad_name, unknown, no_scope, out_of_range))
    assert "Invalid `project`" in texts[0] and "'shop'" in texts[0]
    assert "Invalid `projekt`" in texts[1] and "['app', 'project']" in texts[1]
    assert "audit:read" in texts[2]
    assert "Invalid `project`" in texts[3]
    rows = await audit_rows(store)
    assert [(x["tool"], x["outcome"]) for x in rows] == [
        ("apps", "invalid"), ("apps", "invalid"), ("get_audit_log", "denied"), ("apps", "invalid")]
    assert all(x["error"] for x in rows)


async def test_secret_arguments_are_redacted_in_the_audit_row(store: PgStore, mode: str) -> None:
    secret = "hunter2-" + "z" * 10
    async with Client(server_for(store), mode=mode) as c:
        r = await c.call_tool("apps", {"project": "shop", "password": secret, "token": "dmcp_" + "q" * 30})
        page = (await c.call_tool("get_audit_log", {"limit": 5})).structured_content
    assert r.is_error  # unknown arguments are refused, and still audited
    rows = await audit_rows(store)
    assert rows[0]["arguments"] == {"project": "shop", "password": "[redacted]", "token": "[redacted]"}
    assert secret not in str(rows) and secret not in str(page)
    assert "q" * 30 not in str(rows)


async def test_audit_log_pages_with_a_cursor(store: PgStore, mode: str) -> None:
    async with Client(server_for(store), mode=mode) as c:
        for _ in range(5):
            await c.call_tool("whoami", {})
        first = (await c.call_tool("get_audit_log", {"limit": 2, "tool": "whoami"})).structured_content
        assert first is not None and first["next_cursor"]
        second = (await c.call_tool("get_audit_log", {"limit": 2, "tool": "whoami",
                                                      "cursor": first["next_cursor"]})).structured_content
        third = (await c.call_tool("get_audit_log", {"limit": 2, "tool": "whoami",
                                                     "cursor": second["next_cursor"]})).structured_content
        bad = await c.call_tool("get_audit_log", {"cursor": "not-a-cursor"})
    ids = [e["id"] for page in (first, second, third) for e in page["entries"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert third is not None and third["next_cursor"] is None
    assert bad.is_error and "Invalid `cursor`" in bad.content[0].text  # type: ignore[union-attr]
    async with Client(server_for(store, tenant="other"), mode=mode) as c:
        theirs = (await c.call_tool("get_audit_log", {})).structured_content
    assert theirs is not None and all(e["tool"] == "get_audit_log" for e in theirs["entries"])
