"""`create_app`/`deploy`/`set_secrets`/`delete_app` refuse bad input before anything happens, with messages
that name the field and the fix; and a platform without a cluster says so instead of half-acting."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal

ALL = frozenset({"apps:read", "apps:write", "secrets:write", "audit:read"})
BASE = {"project": "shop", "name": "web", "source": {"image": "127.0.0.1:5000/a/web:v1"}, "port": 8080}


def server(store: PgStore, scopes: frozenset[str] = ALL) -> Any:
    return build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                        transport="memory", principal=Principal("acme", "alice", scopes, "memory"))


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"name": "Web_1"}, "name", "'web-1'"),
    ({"project": "a" * 30}, "project", "at most 20"),
    ({"source": {"image": "Registry.example.com/UPPER/app"}}, "source.image", "uppercase"),
    ({"source": {"imag": "x"}}, "source.imag", "extra inputs are not permitted"),
    ({"source": {}}, "source", "exactly one of `image` or `git`"),
    ({"source": {"git": {"url": "http://example.com/repo.git"}}}, "source.git", "https"),
    ({"source": {"git": {"url": "https://example.com/r.git", "ref": "--upload-pack=x"}}}, "source.git", "-"),
    ({"source": {"image": "http://x/y"}}, "source.image", "e.g."),
    ({"port": 0}, "port", "greater than or equal to 1"),
    ({"replicas": 50}, "replicas", "less than or equal to 20"),
    ({"env": {"BAD-NAME": "x"}}, "env.BAD-NAME", "POSIX"),
    ({"resources": {"cpu_millicores": 500, "cpu_limit_millicores": 100}}, "resources.cpu_limit_millicores", "below"),
    ({"health_check": {"type": "http", "path": "no-slash"}}, "health_check.path", "pattern"),
    ({"colour": "blue"}, "colour", "takes no argument"),
])
async def test_create_app_names_the_field_and_the_fix(store: PgStore, change: dict[str, Any], field: str,
                                                      words: str) -> None:
    async with Client(server(store)) as c:
        r = await c.call_tool("create_app", BASE | change)
    text = r.content[0].text  # type: ignore[union-attr]
    assert r.is_error
    assert f"Invalid `{field}`" in text, text
    assert words in text, text


async def test_rejected_values_are_not_echoed(store: PgStore) -> None:
    async with Client(server(store)) as c:
        r = await c.call_tool("create_app", BASE | {"secrets": {"TOKEN": ["hunter2-not-a-string"]}})
    assert r.is_error and "hunter2" not in r.content[0].text  # type: ignore[union-attr]
    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT arguments::text AS a FROM audit_events")).fetchall()
    assert "hunter2" not in str(rows)


async def test_secrets_need_their_scope(store: PgStore) -> None:
    async with Client(server(store, scopes=frozenset({"apps:read", "apps:write"}))) as c:
        r = await c.call_tool("create_app", BASE | {"secrets": {"TOKEN": "x"}})
        s = await c.call_tool("set_secrets", {"project": "shop", "app": "web", "values": {"A": "b"}})
    assert r.is_error and "secrets:write" in r.content[0].text  # type: ignore[union-attr]
    assert s.is_error and "secrets:write" in s.content[0].text  # type: ignore[union-attr]


async def test_without_a_cluster_changes_are_refused_and_nothing_is_recorded(store: PgStore) -> None:
    async with Client(server(store)) as c:
        r = await c.call_tool("create_app", BASE)
        d = await c.call_tool("delete_app", {"project": "shop", "app": "web", "confirm": "shop/web"})
    assert r.is_error and "no cluster" in r.content[0].text  # type: ignore[union-attr]
    assert d.is_error and "No app named" in d.content[0].text  # type: ignore[union-attr]
    assert await store.list_apps("acme", None) == []
