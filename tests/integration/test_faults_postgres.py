"""Postgres stopped under a running server and started again (same port, same data directory): while it is
down every tool answers the agent-facing "database cannot be reached" error, never a crash, and once it is
back the same server process (same store, same pool) answers normally, through a real MCP client in `auto`
and `legacy` modes. A write cut by the outage leaves nothing half-written.

The test owns its Postgres (the session's serves the other tests and must not stop)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.types import CallToolResult

from mcp_server.devenv.embedded import EmbeddedPostgres
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import PlatformConfig, Principal
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "audit:read"})
UNAVAILABLE = "The platform's database cannot be reached now. Call again in a minute"


def text(r: CallToolResult) -> str:
    return r.content[0].text  # type: ignore[union-attr]


def unavailable(r: CallToolResult) -> None:
    assert r.is_error, r
    assert text(r).startswith(UNAVAILABLE), text(r)
    assert "Error executing tool" not in text(r)


def client(store: PgStore, workflows: TemporalWorkflows, box: SecretBox, mode: str) -> Client:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=0),
                      workflows=workflows, images=StandInImages(), secretbox=box)
    server = build_server(deps, transport="memory", principal=Principal("acme", "alice", SCOPES, "memory"))
    return Client(server, mode=mode)


async def test_tools_say_the_database_is_unreachable_and_recover_once_it_is_back(
        own_postgres: EmbeddedPostgres, temporal_address: str, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    # a short pool timeout: the agent hears "call again" within seconds, not after the default 30 s
    store = await PgStore.open(own_postgres.url, min_size=2, max_size=4, timeout=3)
    box = SecretBox(Fernet.generate_key())
    try:
        async with stand_in_worker(store, temporal_address, Cluster(), box) as workflows, \
                client(store, workflows, box, mode) as c:
            app = {"project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"},
                   "port": 8080, "wait_seconds": 0}
            created = await c.call_tool("create_app", app)
            assert not created.is_error, text(created)
            ok(await c.call_tool("apps", {}))

            own_postgres.stop()
            started = time.monotonic()
            calls: list[tuple[str, dict[str, Any]]] = [
                ("apps", {}), ("apps", {"project": "shop", "app": "web"}),
                ("set_secrets", {"project": "shop", "app": "web", "values": {"TOKEN": "s3cr3t"}}),
                ("create_app", {**app, "name": "api"})]
            for name, args in calls:
                r = await c.call_tool(name, args)
                unavailable(r)
                assert "s3cr3t" not in text(r)
            lost = [r.getMessage() for r in caplog.records if "could not write the audit row" in r.getMessage()]
            assert any('"tool":"set_secrets"' in m and '"outcome":"error"' in m for m in lost), lost
            assert not any("s3cr3t" in m for m in lost)  # the row in the log is the redacted one
            assert time.monotonic() - started < 60  # each call gives up within the pool's timeout (plus its audit row)

            own_postgres.start()  # same port, same data directory
            # The pool reconnects with a growing backoff: until it has, the call says "call again", nothing else.
            deadline = time.monotonic() + 90
            while (r := await c.call_tool("apps", {})).is_error and time.monotonic() < deadline:
                unavailable(r)
                await asyncio.sleep(1)
            apps = ok(r)
            assert [a["name"] for a in apps["apps"]] == ["web"]  # the create_app cut by the outage wrote nothing
            ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
            ok(await c.call_tool("set_secrets", {"project": "shop", "app": "web", "values": {"TOKEN": "s3cr3t"}}))

            # A restart between two calls: the pool's idle connections are dead, and the next call must not
            # get one of them (each is checked before use).
            own_postgres.stop()
            own_postgres.start()
            # The dead connections are dropped at checkout; the pool's new ones may take longer than its 3 s
            # timeout on a loaded machine, and until then the call says "call again" (never a crash).
            deadline = time.monotonic() + 20
            while (r := await c.call_tool("apps", {})).is_error and time.monotonic() < deadline:
                unavailable(r)
                await asyncio.sleep(0.5)
            ok(r)
            ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
    finally:
        await store.close()


async def test_a_write_cut_mid_way_by_the_outage_leaves_nothing_half_written(
        own_postgres: EmbeddedPostgres, temporal_address: str, mode: str) -> None:
    store = await PgStore.open(own_postgres.url, min_size=2, max_size=4, timeout=3)
    box = SecretBox(Fernet.generate_key())
    counts = ("SELECT (SELECT count(*) FROM apps) AS apps, (SELECT count(*) FROM secret_versions) AS secrets, "
              "(SELECT count(*) FROM deployments) AS releases")
    try:
        async with stand_in_worker(store, temporal_address, Cluster(), box) as workflows, \
                client(store, workflows, box, mode) as c:
            web = ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "port": 8080,
                                                      "wait_seconds": 0,
                                                      "source": {"image": "registry.test/team/web:v1"}}))
            for _ in range(120):  # its workflow's own writes to deployments must not queue behind the lock below
                got = ok(await c.call_tool("deployments", {"deployment_id": web["deployment_id"]}))
                if got["phase"] == "succeeded":
                    break
                await asyncio.sleep(0.5)
            async with await psycopg.AsyncConnection.connect(own_postgres.url, autocommit=True) as probe:
                before = await (await probe.execute(counts)).fetchone()
            # create_app with secrets writes the app, its first secrets version, then its release: hold the
            # release's INSERT back so the outage cuts the transaction between them
            blocker = await psycopg.AsyncConnection.connect(own_postgres.url)
            await blocker.execute("LOCK TABLE deployments IN EXCLUSIVE MODE")
            api = {"project": "shop", "name": "api", "port": 8080, "wait_seconds": 0, "idempotency_key": "api-1",
                   "source": {"image": "registry.test/team/api:v1"}, "secrets": {"TOKEN": "s3cr3t"}}
            call = asyncio.create_task(c.call_tool("create_app", api))
            async with await psycopg.AsyncConnection.connect(own_postgres.url, autocommit=True) as probe:
                for _ in range(200):
                    row = await (await probe.execute(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%%INSERT INTO deployments%%'")).fetchone()
                    if row and row[0]:
                        break
                    await asyncio.sleep(0.05)
                else:
                    seen = await (await probe.execute(
                        "SELECT state, wait_event_type, left(query, 60) FROM pg_stat_activity")).fetchall()
                    pytest.fail(f"create_app never reached its release INSERT: {seen}, {call.done()}")
                written = await (await probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                    "AND query LIKE '%%INSERT INTO deployments%%'")).fetchone()
                assert written and written[0] == 1  # its app and secrets version are written, not yet committed
            own_postgres.stop()
            unavailable(await call)
            with contextlib.suppress(psycopg.Error):
                await blocker.close()
            own_postgres.start()
            async with await psycopg.AsyncConnection.connect(own_postgres.url, autocommit=True) as probe:
                after = await (await probe.execute(counts)).fetchone()
            assert after == before  # no app, secrets version or release: the cut transaction rolled back
            deadline = time.monotonic() + 90  # and the same call, repeated, is made once the pool reconnects
            while (r := await c.call_tool("create_app", api)).is_error and time.monotonic() < deadline:
                unavailable(r)
                await asyncio.sleep(1)
            assert ok(r)["release"] == "api-r1"
    finally:
        await store.close()
