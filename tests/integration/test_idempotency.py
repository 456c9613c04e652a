"""Idempotency keys with Stripe's semantics (tools/idempotency.py), over a real MCP client (`auto` and
`legacy`) on a real Postgres and a real Temporal dev server running the deploy and volume workflows with
stand-in cluster activities.

- A call retried with its key returns the first result and records nothing new: `create_app`, `deploy`,
  `create_volume`, `snapshot_volume`, `backup_volume`, `restore_volume`, `attach_volume`; concurrent retries
  too (one release).
- The same key with other arguments is refused: the error names `idempotency_key` and the arguments that
  differ (secret arguments by name, never their values, neither in the error nor in the audit row), or the
  tool the key was first used with; nothing is written (no release, secrets version, volume, snapshot or
  attachment), even where the call would have made a volume before its release.
- Omitted and explicit default arguments are the same request; a rollback never gets back the release a
  deploy's key made.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import PlatformConfig, Principal
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write", "audit:read"})
WEB = {"project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"}, "port": 8080,
       "env": {"LOG": "info"}, "secrets": {"TOKEN": "hunter2-first"}, "wait_seconds": 0}


@dataclass
class Platform:
    store: PgStore
    workflows: TemporalWorkflows
    tenant: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:6]}")

    def client(self, mode: str) -> Client:
        deps = ServerDeps(store=self.store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=30,
                                                                 rollback_window_seconds=1),
                          workflows=self.workflows, images=StandInImages(),
                          secretbox=SecretBox(KEY))
        return Client(build_server(deps, transport="memory", principal=Principal(self.tenant, "agent", SCOPES,
                                                                                  "memory")), mode=mode)

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        async with self.store.pool.connection() as conn:
            return await (await conn.execute(sql)).fetchall()

    async def counts(self) -> tuple[int, ...]:
        tables = ("deployments", "secret_versions", "volumes", "volume_snapshots", "volume_attachments")
        found = []
        for t in tables:
            found.append((await self.rows(f"SELECT count(*) AS n FROM {t}"))[0]["n"])
        return tuple(found)


KEY = Fernet.generate_key()


@pytest.fixture
async def platform(store: PgStore, temporal_address: str) -> AsyncIterator[Platform]:
    async with stand_in_worker(store, temporal_address, Cluster(), SecretBox(KEY)) as workflows:
        yield Platform(store, workflows)


def refused(r: Any, *words: str) -> str:
    assert r.is_error, r.structured_content
    text: str = r.content[0].text
    assert "Invalid `idempotency_key`" in text, text
    for w in words:
        assert w in text, text
    return text


async def test_create_app_and_deploy_keys(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        first = ok(await c.call_tool("create_app", WEB | {"idempotency_key": "k1"}))
        again = ok(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "replicas": 1,
                                                          "wait_seconds": 5}))  # explicit default, other wait
        assert again["deployment_id"] == first["deployment_id"]
        before = await platform.counts()
        text = refused(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "env": {"LOG": "debug"},
                                                              "secrets": {"TOKEN": "hunter2-second"}}),
                       "`env`", "`secrets`", "differ")
        assert "hunter2" not in text
        refused(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "replicas": 2}), "`replicas` differs")
        refused(await c.call_tool("deploy", {"project": "shop", "app": "web", "idempotency_key": "k1"}),
                "first used with `create_app`, not `deploy`")
        d1 = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "warn"},
                                             "idempotency_key": "k2", "wait_seconds": 0}))
        d2 = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "warn"},
                                             "idempotency_key": "k2", "wait_seconds": 0}))
        assert d1["deployment_id"] == d2["deployment_id"] != first["deployment_id"]
        after_deploy = await platform.counts()
        refused(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "warn"},
                                             "source": {"image": "registry.test/team/web:v2"},
                                             "idempotency_key": "k2"}), "`source` differs")
    assert after_deploy[0] == before[0] + 1 and after_deploy[1:] == before[1:]
    assert await platform.counts() == after_deploy  # the refusals wrote nothing
    audit = await platform.rows("SELECT arguments::text AS a, error FROM audit_events")
    assert "hunter2" not in str(audit)
    stored = await platform.rows("SELECT request_fingerprint::text AS f FROM deployments")
    assert "hunter2" not in str(stored) and all(r["f"] for r in stored)


async def test_a_retry_with_other_volumes_creates_none(platform: Platform, mode: str) -> None:
    volume = {"name": "data", "size_gib": 1, "mount_path": "/data"}
    async with platform.client(mode) as c:
        ok(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "volumes": [volume], "wait_seconds": 20}))
        before = await platform.counts()
        refused(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "volumes": [
            volume, {"name": "cache", "size_gib": 2, "mount_path": "/cache"}]}), "`volumes` differs")
    assert await platform.counts() == before
    assert [r["name"] for r in await platform.rows("SELECT name FROM volumes")] == ["data"]


async def test_concurrent_retries_record_one_release(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        results = await asyncio.gather(*(c.call_tool("create_app", WEB | {"idempotency_key": "same"})
                                         for _ in range(8)))
    ids = {ok(r)["deployment_id"] for r in results}
    assert len(ids) == 1
    assert (await platform.counts())[:2] == (1, 1)


async def test_volume_operation_keys(platform: Platform, mode: str) -> None:
    vol = {"project": "shop", "volume": "data", "size_gib": 1, "idempotency_key": "v1"}
    async with platform.client(mode) as c:
        created = ok(await c.call_tool("volume", {"action": "create"} | vol))
        assert created["done"] and created["volume"]["status"] == "bound"
        ok(await c.call_tool("volume", {"action": "create"} | vol | {"access": "single_node"}))  # explicit default
        refused(await c.call_tool("volume", {"action": "create"} | vol | {"size_gib": 2}), "`size_gib` differs")
        refused(await c.call_tool("volume", {"action": "create"} | vol | {"volume": "other"}), "`volume` differs")
        assert await platform.counts() == (0, 0, 1, 0, 0)

        snap = {"project": "shop", "volume": "data", "idempotency_key": "s1"}
        s1 = ok(await c.call_tool("volume", {"action": "snapshot"} | snap))
        s2 = ok(await c.call_tool("volume", {"action": "snapshot"} | snap))
        assert s1["id"] == s2["id"] and s2["status"] == "ready"
        refused(await c.call_tool("volume", {"action": "backup"} | snap), "first used with `volume action=snapshot`")
        b1 = ok(await c.call_tool("volume", {"action": "backup"} | snap | {"idempotency_key": "b1"}))
        assert b1["id"] != s1["id"]
        assert await platform.counts() == (0, 0, 1, 2, 0)

        restore = {"project": "shop", "from_snapshot": s1["id"], "volume": "copy", "idempotency_key": "r1"}
        ok(await c.call_tool("volume", {"action": "restore"} | restore))
        ok(await c.call_tool("volume", {"action": "restore"} | restore))
        refused(await c.call_tool("volume", {"action": "restore"} | restore | {"volume": "copy2"}), "`volume` differs")
        refused(await c.call_tool("volume", {"action": "restore"} | restore | {"from_snapshot": b1["id"]}),
                "`from_snapshot`")
        refused(await c.call_tool("volume", {"action": "create"} | vol | {"idempotency_key": "r1", "volume": "copy"}),
                "first used with `volume action=restore`")
        assert await platform.counts() == (0, 0, 2, 2, 0)

        ok(await c.call_tool("create_app", WEB | {"secrets": {}}))
        attach = {"project": "shop", "app": "web", "volume": "data", "mount_path": "/data", "idempotency_key": "a1",
                  "wait_seconds": 0}
        a1 = ok(await c.call_tool("volume", {"action": "attach"} | attach))
        a2 = ok(await c.call_tool("volume", {"action": "attach"} | attach))
        assert a1["deployment_id"] == a2["deployment_id"]
        before = await platform.counts()
        refused(await c.call_tool("volume", {"action": "attach"} | attach | {"mount_path": "/srv"}),
                "`mount_path` differs")
        refused(await c.call_tool("volume", {"action": "attach"} | attach | {"read_only": True}),
                "`read_only` differs")
    assert await platform.counts() == before
    assert [r["mount_path"] for r in await platform.rows("SELECT mount_path FROM volume_attachments")] == ["/data"]


async def test_a_rollback_never_returns_the_release_a_deploy_key_made(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        first = ok(await c.call_tool("create_app", WEB | {"idempotency_key": "k1", "wait_seconds": 20}))
        ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "warn"},
                                        "idempotency_key": "k2", "wait_seconds": 20}))
        before = await platform.counts()
        refused(await c.call_tool("rollback", {"project": "shop", "app": "web", "to": first["deployment_id"],
                                               "idempotency_key": "k2"}), "first used for a deploy, not a rollback")
    assert await platform.counts() == before


async def test_a_rollback_key_reused_for_another_target_is_refused(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        first = ok(await c.call_tool("create_app", WEB | {"wait_seconds": 20}))
        second = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "warn"},
                                                 "wait_seconds": 20}))
        ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"LOG": "debug"},
                                        "wait_seconds": 20}))
        back = ok(await c.call_tool("rollback", {"project": "shop", "app": "web", "to": first["deployment_id"],
                                                 "idempotency_key": "rb", "wait_seconds": 20}))
        before = await platform.counts()
        again = ok(await c.call_tool("rollback", {"project": "shop", "app": "web", "to": first["deployment_id"],
                                                  "idempotency_key": "rb", "wait_seconds": 0}))
        assert again["deployment_id"] == back["deployment_id"]
        refused(await c.call_tool("rollback", {"project": "shop", "app": "web", "to": second["deployment_id"],
                                               "idempotency_key": "rb"}), "`to`")
    assert await platform.counts() == before
