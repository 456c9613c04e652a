"""The store's own errors on a real Postgres, and what the agent reads of them: a release for a missing
project or app is `RecordNotFound`, a taken app name and a lost secrets race are `RecordConflict`, a database
that cannot be reached is `StoreUnavailable`; `tools.errors.from_store` gives the agent the messages the tools
always gave, and a tool call on an unreachable database says so instead of crashing."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal
from tools.errors import Conflict, NotFound, Unavailable, from_store
from tools.ports import RecordConflict, RecordNotFound, StoreUnavailable
from tools.records import NewRelease


def release(project: str, app: str, *, create: bool) -> NewRelease:
    return NewRelease(tenant="acme", project=project, app=app, hostname=f"{app}-{project}-acme.apps.test",
                      create=create, config={"port": 8080}, source={"image": "r/x:1"}, image="r/x:1",
                      image_digest="sha256:" + "a" * 64, created_by="alice", workflow_id_prefix="t/")


async def test_missing_project_and_app(store: PgStore) -> None:
    with pytest.raises(RecordNotFound) as missing:
        await store.create_release(release("nope", "web", create=False))
    assert (missing.value.kind, missing.value.key) == ("project", "nope")
    await store.ensure_project("acme", "shop")
    with pytest.raises(RecordNotFound) as no_app:
        await store.create_release(release("shop", "web", create=False))
    assert (no_app.value.kind, no_app.value.key) == ("app", "shop/web")


async def test_taken_app_name_and_lost_secrets_race(store: PgStore) -> None:
    first = await store.create_release(release("shop", "web", create=True))
    other = release("shop", "web", create=True).model_copy(update={"image_digest": "sha256:" + "b" * 64})
    with pytest.raises(RecordConflict) as taken:
        await store.create_release(other)
    assert (taken.value.kind, taken.value.key) == ("app", "shop/web")
    await store.add_secret_version(first.app.id, 0, ["A"], b"sealed", "alice")
    with pytest.raises(RecordConflict) as race:
        await store.add_secret_version(first.app.id, 0, ["B"], b"sealed", "bob")
    assert race.value.kind == "secrets"


def test_agents_read_the_messages_the_tools_always_gave() -> None:
    cases: list[tuple[Any, type, str]] = [
        (RecordNotFound("project", "shop"), NotFound,
         "No project named 'shop' in your tenant. Call `apps`; `create_app` creates projects."),
        (RecordNotFound("app", "shop/web"), NotFound,
         "No app named 'shop/web' in your tenant. Create it with `create_app`."),
        (RecordConflict("app", "shop/web"), Conflict,
         "The app shop/web already exists. Use `deploy` to release a new version, or pass the same "
         "`idempotency_key` to retry."),
        (RecordConflict("hostname", "web-shop-acme.apps.test"), Conflict,
         "The hostname web-shop-acme.apps.test is already used by another app. Choose another app or project name."),
        (RecordConflict("secrets", "x@2"), Conflict, "The app's secrets changed while this call ran. Call it again."),
        (StoreUnavailable("down"), Unavailable,
         "The platform's database cannot be reached now. Call again in a minute; if it persists, tell the operator."),
    ]
    for error, kind, text in cases:
        agent = from_store(error)
        assert type(agent) is kind and str(agent) == text


async def unreachable_store() -> PgStore:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "postgresql://deploy@127.0.0.1:1/none", min_size=1, max_size=1, open=False, timeout=0.5,
        kwargs={"row_factory": dict_row, "autocommit": True, "connect_timeout": 1},
    )
    await pool.open(wait=False)
    return PgStore(pool)


async def test_an_unreachable_database_is_store_unavailable_and_the_agent_is_told() -> None:
    store = await unreachable_store()
    try:
        with pytest.raises(StoreUnavailable):
            await store.get_app("acme", "shop", "web")
        server = build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                              transport="memory", principal=Principal("acme", "alice", frozenset({"apps:read"}),
                                                                      "memory"))
        async with Client(server) as c:
            r = await c.call_tool("apps", {})
        assert r.is_error and "The platform's database cannot be reached now." in r.content[0].text  # type: ignore[union-attr]
    finally:
        await store.close()
