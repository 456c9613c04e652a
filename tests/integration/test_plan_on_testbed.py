"""`plan=true` against the testbed's real API server (decision 0021): its server-side dry run (`dryRun=All`)
accepts a valid plan and refuses an invalid one with the field named, and nothing is created in the cluster
either way. The lead runs it (marker `cluster`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mcp.client import Client

from mcp_server.cluster_planner import KubePlanner
from mcp_server.devenv.embedded import Testbed
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tests.support.platform import ok
from tests.support.stand_ins import StandInImages
from tools.context import PlatformConfig, Principal
from workflows.adapters.kube import Kube
from workflows.domain.names import namespace_name
from workflows.render.namespace import project_labels

pytestmark = pytest.mark.cluster
SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "audit:read"})


@asynccontextmanager
async def client(store: PgStore, testbed: Testbed, tenant: str, **config: object) -> AsyncIterator[Client]:
    """An MCP client of a server whose planner dry-runs on the testbed; the planner's client is closed after."""
    planner = KubePlanner(lambda: Kube.connect(testbed.kubeconfig))
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", runtime_class=None,
                                                         **config),  # type: ignore[arg-type]
                      images=StandInImages(), planner=planner)  # no workflows: a plan starts none
    try:
        async with Client(build_server(deps, transport="memory",
                                       principal=Principal(tenant, "agent", SCOPES, "memory"))) as c:
            yield c
    finally:
        await planner.aclose()


def web(name: str) -> dict[str, object]:
    return {"project": "shop", "name": name, "source": {"image": f"registry.test/team/{name}:v1"}, "port": 8080,
            "env": {"LOG": "info"}, "secrets": {"TOKEN": "hunter2-never-shown"}, "plan": True}


async def test_the_api_server_accepts_a_valid_plan_and_nothing_is_created(store: PgStore, testbed: Testbed,
                                                                         kube: Kube) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    ns = namespace_name(tenant, "shop")
    async with client(store, testbed, tenant) as c:
        first = ok(await c.call_tool("create_app", web("web")))
    # a new project: the Namespace is checked, what goes in it cannot be before it exists
    assert first["objects"][0]["ref"] == f"Namespace/{ns}" and first["objects"][0]["validated"] is True
    assert first["validated"] is False and ns in (first["reason"] or "")
    assert await kube.get("v1", "Namespace", None, ns) is None  # the dry run created nothing

    # the project exists (as an earlier app made it): every object is checked by the API server
    await kube.apply({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": ns, "labels": project_labels(tenant, "shop")}})
    try:
        async with client(store, testbed, tenant) as c:
            plan = ok(await c.call_tool("create_app", web("web")))
        assert plan["validated"] is True, plan["reason"]
        assert all(o["validated"] for o in plan["objects"]), plan["objects"]
        by_ref = {o["ref"]: o for o in plan["objects"]}
        assert by_ref[f"Deployment/{ns}/web-r1"]["action"] == "create"
        assert by_ref[f"Namespace/{ns}"]["action"] in ("update", "unchanged")
        for kind, name in (("Deployment", "web-r1"), ("Secret", "web-r1-env"), ("Service", "web")):
            assert await kube.get("apps/v1" if kind == "Deployment" else "v1", kind, ns, name) is None, kind
        assert "hunter2" not in str(plan)
    finally:
        await kube.delete("v1", "Namespace", None, ns)


async def test_the_api_server_refuses_an_invalid_plan_naming_the_field(store: PgStore, testbed: Testbed,
                                                                       kube: Kube) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    ns = namespace_name(tenant, "shop")
    await kube.apply({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": ns, "labels": project_labels(tenant, "shop")}})
    try:
        # an ingress class no name can have, as a misconfigured platform would render it: only the API server's
        # validation sees it, and the real release would fail the same way at its apply
        async with client(store, testbed, tenant, ingress_class="Not_A_Valid.Name") as c:
            r = await c.call_tool("create_app", web("web"))
        assert r.is_error
        text = r.content[0].text  # type: ignore[union-attr]
        assert f"Ingress/{ns}/web" in text and "ingressClassName" in text, text
        assert await kube.get("networking.k8s.io/v1", "Ingress", ns, "web") is None
        assert await kube.get("apps/v1", "Deployment", ns, "web-r1") is None
    finally:
        await kube.delete("v1", "Namespace", None, ns)
