"""Caps on an app's environment (workflows/domain/env_limits.py), over a real MCP client (`auto` and `legacy`)
on a real Postgres and a real Temporal dev server running the deploy workflow with stand-in cluster
activities.

- `create_app` refuses too many variables, too many bytes of names and values, one variable longer than a
  process accepts, a NUL or a lone surrogate in a value; each error names the field, the limit and the size,
  and no app, volume or release is recorded.
- The cap applies to the result, not the call's own part: `deploy` adding env on top of stored secrets, and
  `set_secrets` adding secrets on top of the app's env, are refused when the sum is over, and nothing new is
  recorded (no release, no secrets version); `unset_secrets` still shrinks an app.
- No error and no audit row holds a secret value.
"""

from __future__ import annotations

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
KIB = 1024
SOURCE = {"image": "registry.test/team/web:v1"}


@dataclass
class Platform:
    store: PgStore
    workflows: TemporalWorkflows
    box: SecretBox
    tenant: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:6]}")

    def client(self, mode: str) -> Client:
        deps = ServerDeps(store=self.store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=30),
                          workflows=self.workflows, images=StandInImages(), secretbox=self.box)
        return Client(build_server(deps, transport="memory", principal=Principal(self.tenant, "agent", SCOPES,
                                                                                  "memory")), mode=mode)

    async def count(self, table: str) -> int:
        async with self.store.pool.connection() as conn:
            row = await (await conn.execute(f"SELECT count(*) AS n FROM {table}")).fetchone()
        assert row is not None
        return int(row["n"])

    async def audit_text(self) -> str:
        async with self.store.pool.connection() as conn:
            rows = await (await conn.execute("SELECT arguments::text AS a, error FROM audit_events")).fetchall()
        return str(rows)


@pytest.fixture
async def platform(store: PgStore, temporal_address: str) -> AsyncIterator[Platform]:
    box = SecretBox(Fernet.generate_key())
    async with stand_in_worker(store, temporal_address, Cluster(), box) as workflows:
        yield Platform(store, workflows, box)


def error_text(r: Any) -> str:
    assert r.is_error, r.structured_content
    text: str = r.content[0].text
    return text


def big(n: int, marker: str = "v") -> str:
    return marker * n


@pytest.mark.parametrize(("args", "field", "words"), [
    ({"env": {f"V{i}": "x" for i in range(10_000)}}, "env + secrets", ["10,000 variables", "the limit is 1,000"]),
    ({"env": {f"V{i}": "x" for i in range(600)}, "secrets": {f"S{i}": "x" for i in range(401)}},
     "env + secrets", ["1,001 variables", "the limit is 1,000"]),
    ({"env": {f"V{i}": big(100 * KIB) for i in range(3)}}, "env + secrets",
     ["300.0 KiB", "the limit is 256 KiB", "volume"]),
    ({"secrets": {"CERT": big(200 * KIB, "s")}}, "secrets.CERT", ["200.0 KiB", "128 KiB"]),
    ({"env": {"A": "x\x00y"}}, "env.A", ["NUL"]),
    ({"secrets": {"A": "x\ud800y"}}, "secrets.A", ["lone surrogate"]),
])
async def test_create_app_refuses_an_environment_over_the_caps(platform: Platform, mode: str, args: dict[str, Any],
                                                               field: str, words: list[str]) -> None:
    call = {"project": "shop", "name": "web", "source": SOURCE, "port": 8080, "wait_seconds": 0,
            "volumes": [{"name": "data", "size_gib": 1, "mount_path": "/data"}]} | args
    async with platform.client(mode) as c:
        text = error_text(await c.call_tool("create_app", call))
    assert f"Invalid `{field}`" in text, text
    for w in words:
        assert w in text, text
    assert "sss" not in text and "sss" not in await platform.audit_text()  # no secret value echoed
    assert await platform.store.list_apps(platform.tenant, None) == []
    assert await platform.count("volumes") == 0 and await platform.count("deployments") == 0


async def test_the_cap_applies_to_the_merged_result(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "source": SOURCE, "port": 8080,
                                            "env": {"PLAIN": big(100 * KIB)},
                                            "secrets": {"KEY": big(100 * KIB, "s")}}))
        releases, versions = await platform.count("deployments"), await platform.count("secret_versions")
        # each call's own part is small; with what the app already holds the release would be over 256 KiB
        text = error_text(await c.call_tool("deploy", {"project": "shop", "app": "web",
                                                       "env": {"MORE": big(60 * KIB)}, "wait_seconds": 0}))
        assert "Invalid `env + secrets`" in text and "260.0 KiB" in text and "256 KiB" in text, text
        text = error_text(await c.call_tool("deploy", {"project": "shop", "app": "web", "wait_seconds": 0,
                                                       "secrets": {"MORE": big(60 * KIB, "s")}}))
        assert "Invalid `env + secrets`" in text and "260.0 KiB" in text, text
        text = error_text(await c.call_tool("set_secrets", {"project": "shop", "app": "web",
                                                            "values": {"MORE": big(60 * KIB, "s")}}))
        assert "Invalid `values`" in text and "env + secrets would hold 260.0 KiB" in text, text
        assert (await platform.count("deployments"), await platform.count("secret_versions")) == (releases, versions)
        # replacing a value counts once, and removing always works
        ok(await c.call_tool("set_secrets", {"project": "shop", "app": "web", "values": {"KEY": big(120 * KIB, "s")}}))
        ok(await c.call_tool("set_secrets", {"project": "shop", "app": "web", "values": {"KEY": None}}))
        done = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "env": {"MORE": big(60 * KIB)}}))
        assert done["phase"] == "succeeded"
    assert "sss" not in await platform.audit_text()


async def test_the_variable_count_applies_to_env_and_secrets_together(platform: Platform, mode: str) -> None:
    async with platform.client(mode) as c:
        ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "source": SOURCE, "port": 8080,
                                            "env": {f"V{i}": "x" for i in range(600)}, "wait_seconds": 0}))
        text = error_text(await c.call_tool("set_secrets", {"project": "shop", "app": "web",
                                                            "values": {f"S{i}": "x" for i in range(401)}}))
    assert "Invalid `values`" in text and "1,001 variables, the limit is 1,000" in text, text
    assert await platform.count("secret_versions") == 0
