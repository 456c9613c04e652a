"""Deploys with Harbor configured, through an MCP client, reconciled by the real worker on the testbed, with the
FAKE Harbor (tests/fakes/fake_harbor.py) served over HTTP at `harbor_url`: the tenant's project, robot and
retention rule exist; the project namespace holds a dockerconfigjson Secret with the robot's login for the
registry host; the release's pods list it in `imagePullSecrets` and run (the testbed registry ignores auth, so
the pull works either way); a second deploy reuses the stored robot (one creation, no refresh); the robot's
secret is in no audit row, no tool output, no workflow history and no log line, and is sealed at rest."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.types import CallToolResult

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.fakes.fake_harbor import FAKE_ADMIN, FakeHarbor, fake_harbor_running
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"
PULL_SECRET = "deploy-mcp-registry"


@pytest.fixture
async def harbor_platform(database_url: str, temporal_address: str, needs_node: Testbed
                          ) -> AsyncIterator[tuple[Platform, FakeHarbor]]:
    async with fake_harbor_running() as (fake, url):
        settings = platform_settings(database_url, temporal_address, needs_node, harbor={
            "url": url, "username": FAKE_ADMIN[0], "password": FAKE_ADMIN[1], "retention_keep_last": 7})
        async with running_platform(settings) as p:
            yield p, fake


def seen(r: CallToolResult) -> str:
    """Everything the agent receives from one call: the text blocks and the structured content."""
    return json.dumps([getattr(b, "text", "") for b in r.content]) + json.dumps(r.structured_content, default=str)


async def web_image(p: Platform, tag: str, text: str) -> str:
    repo = f"{p.tenant}/web"
    await push_image(REGISTRY, repo, tag, busybox_web_files(text), cmd=BUSYBOX_HTTPD)
    return f"{REGISTRY}/{repo}:{tag}"


async def pull_secret_login(p: Platform, ns: str) -> dict[str, Any]:
    secret = await p.kube.get("v1", "Secret", ns, PULL_SECRET)
    assert secret is not None, f"no Secret {PULL_SECRET} in {ns}"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"]["deploy-mcp/tenant"] == p.tenant
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert list(config["auths"]) == [REGISTRY], "the login is for the registry host the images come from"
    login: dict[str, Any] = config["auths"][REGISTRY]
    assert base64.b64decode(login["auth"]).decode() == f"{login['username']}:{login['password']}"
    return login


async def pod_spec(p: Platform, ns: str, release: str) -> dict[str, Any]:
    dep = await p.kube.get("apps/v1", "Deployment", ns, release)
    assert dep is not None
    spec: dict[str, Any] = dep["spec"]["template"]["spec"]
    return spec


async def test_deploys_pull_with_the_tenants_harbor_robot(
    harbor_platform: tuple[Platform, FakeHarbor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p, fake = harbor_platform
    outputs: list[str] = []
    v1, v2 = await web_image(p, "v1", "pulled one"), await web_image(p, "v2", "pulled two")

    async with p.client() as c:
        created = await c.call_tool("create_app", {
            "project": "shop", "name": "web", "source": {"image": v1}, "port": 8080,
            "health_check": {"type": "http", "path": "/index.html", "period_seconds": 1},
        })
        outputs.append(seen(created))
    first = ok(created)
    assert first["phase"] == "succeeded" and first["serving"], first
    app = await p.deps.store.get_app(p.tenant, "shop", "web")
    assert app is not None
    ns = app.namespace

    # Harbor: the tenant's private project, its retention rule and one robot
    assert fake.projects[p.tenant]["metadata"]["public"] == "false"
    retention = fake.retentions[int(fake.projects[p.tenant]["metadata"]["retention_id"])]
    assert retention["rules"][0]["params"] == {"latestPushedK": 7}
    assert [r["name"] for r in fake.robots.values()] == [f"robot${p.tenant}+deploy-mcp"]

    # the namespace's pull Secret holds the robot's working login; the release pulls with it and runs
    login = await pull_secret_login(p, ns)
    robot_secret = str(login["password"])
    assert login["username"] == f"robot${p.tenant}+deploy-mcp" and fake.robot_login(login["username"], robot_secret)
    assert (await pod_spec(p, ns, "web-r1"))["imagePullSecrets"] == [{"name": PULL_SECRET}]
    pods = await p.kube.list_objects("v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}=web-r1")
    assert [x["status"]["phase"] for x in pods] == ["Running"]
    assert pods[0]["spec"]["imagePullSecrets"] == [{"name": PULL_SECRET}]
    assert await p.service_get(ns, "web", expect="pulled one") == "pulled one"

    # a second deploy reuses the stored robot: no second creation, no refresh, the same login
    async with p.client() as c:
        deployed = await c.call_tool("deploy", {"project": "shop", "app": "web", "source": {"image": v2}})
        outputs.append(seen(deployed))
        second = ok(deployed)
        for tool, args in (("apps", {"project": "shop", "app": "web"}),
                           ("deployments", {"deployment_id": second["deployment_id"]}),
                           ("deployments", {"project": "shop", "app": "web"}),
                           ("get_audit_log", {})):
            outputs.append(seen(await c.call_tool(tool, args)))
    assert second["phase"] == "succeeded" and second["release"] == "web-r2", second
    creations = [r for r in fake.requests if r.method == "POST" and r.url.path.endswith("/robots")]
    refreshes = [r for r in fake.requests if r.method == "PATCH"]
    assert len(creations) == 1 and not refreshes and len(fake.robots) == 1
    assert await pull_secret_login(p, ns) == login
    assert (await pod_spec(p, ns, "web-r2"))["imagePullSecrets"] == [{"name": PULL_SECRET}]
    assert await p.service_get(ns, "web", expect="pulled two") == "pulled two"

    # the robot's secret: nowhere an agent or operator reads, nowhere in Temporal, sealed in Postgres
    assert all(robot_secret not in o for o in outputs) and len(outputs) == 6
    assert isinstance(p.deps.store, PgStore)  # ServerDeps names the port; raw SQL needs the pool
    async with p.deps.store.pool.connection() as conn:
        audit = await (await conn.execute("SELECT * FROM audit_events")).fetchall()
        robots = await (await conn.execute("SELECT robot_name, ciphertext FROM harbor_robots")).fetchall()
    assert len(audit) >= 6 and robot_secret not in json.dumps(audit, default=str)
    deploy_rows = [a for a in audit if a["tool"] in ("create_app", "deploy")]
    assert all(f"Secret/{ns}/{PULL_SECRET}" in a["k8s_refs"] for a in deploy_rows) and len(deploy_rows) == 2
    assert [r["robot_name"] for r in robots] == [login["username"]]
    assert robot_secret.encode() not in bytes(robots[0]["ciphertext"])
    workflows = p.deps.workflows
    assert isinstance(workflows, TemporalWorkflows)
    for workflow_id in (first["workflow_id"], second["workflow_id"]):
        history = await workflows.client.get_workflow_handle(workflow_id).fetch_history()
        text = history.to_json()
        assert "ensure_pull_secret" in text and robot_secret not in text
    assert robot_secret not in caplog.text and FAKE_ADMIN[1] not in caplog.text
