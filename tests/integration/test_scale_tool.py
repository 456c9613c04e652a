"""The `scale` and `app_metrics` tools through an MCP client (both eras), on a real store, before anything
reaches a workflow: the argument rules (one of replicas/autoscale, nothing to stop), the single-writer refusal
with its fix, a platform without a worker; and the one `autoscaler` field `get_app` gains (as recorded until
the reconciler has looked, then as it observed); `deploy` refusing `replicas` for an autoscaled app."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client
from psycopg.types.json import Jsonb

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal
from workflows.domain.names import app_hostname
from workflows.domain.reconcile_contract import Observation
from workflows.domain.scaling import NO_METRICS, AppScale, Autoscale, AutoscalerStatus

ALL = frozenset({"apps:read", "apps:write"})
pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])


def server_for(store: PgStore, scopes: frozenset[str] = ALL) -> Any:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"))
    return build_server(deps, transport="memory", principal=Principal("acme", "alice", scopes, "memory"))


async def seed(store: PgStore, app: str, spec: dict[str, Any]) -> Any:
    p = await store.ensure_project("acme", "shop")
    async with store.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO apps (project_id, name, spec, hostname, status) VALUES (%s, %s, %s, %s, 'running')",
            (p.id, app, Jsonb({"port": 8080, "replicas": 1, **spec}), app_hostname(app, "shop", "acme", "apps.test")))
    return await store.get_app("acme", "shop", app)


def text(r: Any) -> str:
    assert r.is_error, r
    return str(r.content[0].text)


async def test_scale_arguments_and_refusals_name_the_field_and_the_fix(store: PgStore, mode: str) -> None:
    await seed(store, "web", {})
    await seed(store, "db", {"mounts": [{"volume": "data", "claim": "data-x", "mount_path": "/d",
                                         "access": "single_node"}], "strategy": "recreate"})
    async with Client(server_for(store), mode=mode) as c:
        both = await c.call_tool("scale", {"project": "shop", "app": "web", "replicas": 2,
                                           "autoscale": {"max": 3}})
        assert "Invalid `autoscale`: cannot be given with replicas" in text(both)
        neither = await c.call_tool("scale", {"project": "shop", "app": "web"})
        assert "Invalid `replicas`" in text(neither) and "nothing to stop" in text(neither)
        bad_range = await c.call_tool("scale", {"project": "shop", "app": "web", "autoscale": {"min": 4, "max": 2}})
        assert "min <= max" in text(bad_range)
        single = await c.call_tool("scale", {"project": "shop", "app": "db", "replicas": 2})
        assert "single_node volume 'data'" in text(single) and "access: shared" in text(single)
        one = await c.call_tool("scale", {"project": "shop", "app": "db", "autoscale": {"max": 2}})
        assert "Invalid `autoscale`" in text(one)
        no_worker = await c.call_tool("scale", {"project": "shop", "app": "web", "replicas": 2})
        assert "no cluster and worker configured" in text(no_worker)
        missing = await c.call_tool("app_metrics", {"project": "shop", "app": "nope"})
        assert "No app named 'shop/nope'" in text(missing)
    async with Client(server_for(store, frozenset({"apps:read"})), mode=mode) as c:
        assert "apps:write" in text(await c.call_tool("scale", {"project": "shop", "app": "web", "replicas": 2}))


async def test_get_app_shows_the_autoscaler_as_recorded_then_as_observed(store: PgStore, mode: str) -> None:
    app = await seed(store, "web", {})
    async with Client(server_for(store), mode=mode) as c:
        plain = (await c.call_tool("apps", {"project": "shop", "app": "web"})).structured_content
        assert plain is not None and plain["autoscaler"] is None
        auto = Autoscale(min=2, max=5, cpu_percent=60)
        await store.record_scale(app.id, AppScale(autoscale=auto))
        recorded = (await c.call_tool("apps", {"project": "shop", "app": "web"})).structured_content
        assert recorded is not None
        assert recorded["autoscaler"]["min"] == 2 and recorded["autoscaler"]["max"] == 5
        assert recorded["autoscaler"]["conditions"][0].startswith("not observed yet")
        await store.record_observation(Observation(app_id=app.id, release="web-r1", autoscaler=AutoscalerStatus(
            min=2, max=5, cpu_percent=60, target="web-r1", current_replicas=2, desired_replicas=0,
            conditions=[NO_METRICS])))
        seen = (await c.call_tool("apps", {"project": "shop", "app": "web"})).structured_content
        assert seen is not None and seen["autoscaler"]["conditions"] == [NO_METRICS]
        assert seen["autoscaler"]["target"] == "web-r1" and seen["autoscaler"]["current_replicas"] == 2
        refused = await c.call_tool("deploy", {"project": "shop", "app": "web", "replicas": 3})
        assert "Invalid `replicas`: the app is autoscaled" in text(refused)
        await store.record_scale(app.id, AppScale(replicas=4))
        fixed = (await c.call_tool("apps", {"project": "shop", "app": "web"})).structured_content
        assert fixed is not None and fixed["autoscaler"] is None and fixed["replicas"] == 4
