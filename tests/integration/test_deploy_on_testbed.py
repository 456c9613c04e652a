"""`create_app` and `deploy` through an MCP client, reconciled by the real deploy workflow on the testbed
(real kube-apiserver, kubelet node, registry). Checks what the API server holds (read back, not the rendered
dicts), pods Running and Ready, the app answering HTTP, the blue/green Service switch and the kept previous
release, classified failures that leave the previous release serving, idempotent retries, secrets that
are never echoed, and delete_app."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, build_image, busybox_web_files, push_built_image, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.store import PgStore
from tests.conftest import Edge
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node)
    async with running_platform(settings) as p:
        yield p


async def web_image(p: Platform, tag: str, text: str) -> str:
    repo = f"{p.tenant}/web"
    await push_image(REGISTRY, repo, tag, busybox_web_files(text), cmd=BUSYBOX_HTTPD)
    return f"{REGISTRY}/{repo}:{tag}"


async def selected_release(p: Platform, namespace: str, app: str) -> str:
    svc = await p.kube.get("v1", "Service", namespace, app)
    assert svc is not None
    return str(svc["spec"]["selector"][LABEL_RELEASE])


async def edge_get(edge: Edge, host: str, tls: bool = False) -> str:
    """GET / through the edge (Traefik) with the app's Host header, as a browser resolving the name would."""
    url = f"https://127.0.0.1:{edge.https_port}/" if tls else f"http://127.0.0.1:{edge.http_port}/"
    last = ""
    async with httpx.AsyncClient(timeout=5, verify=False) as h:  # noqa: S501 - the testbed's self-signed wildcard
        for _ in range(100):  # the edge picks up a new Ingress within a second
            r = await h.get(url, headers={"Host": host})
            if r.status_code == 200:
                return r.text
            last = f"{r.status_code} {r.text[:200]}"
            await asyncio.sleep(0.2)
    raise AssertionError(f"the edge never served {host}: {last}")


async def test_create_app_runs_a_sandboxed_release_behind_a_stable_service(platform: Platform, edge: Edge) -> None:
    p = platform
    image = await web_image(p, "v1", "hello v1")
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with p.client(mode="legacy") as c:
        r = ok(await c.call_tool("create_app", {
            "project": "shop", "name": "web", "source": {"image": image}, "port": 8080,
            "env": {"GREETING": "hi"}, "secrets": {"API_TOKEN": "s3cr3t-value-123"},
            "health_check": {"type": "http", "path": "/index.html", "period_seconds": 1},
        }, progress_callback=on_progress))
    assert r["phase"] == "succeeded" and r["done"] and r["serving"], r
    assert r["release"] == "web-r1" and r["url"] == f"https://web-shop-{p.tenant}.apps.localhost"
    assert any(m.endswith("waiting") for m in messages) and any(m.endswith("succeeded") for m in messages)
    app = await p.deps.store.get_app(p.tenant, "shop", "web")
    assert app is not None
    ns = app.namespace

    namespace = await p.kube.get("v1", "Namespace", None, ns)
    assert namespace is not None
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted" and labels["deploy-mcp/tenant"] == p.tenant
    assert await p.kube.get("v1", "ResourceQuota", ns, "guardrails") is not None
    assert await p.kube.get("v1", "LimitRange", ns, "guardrails") is not None
    policies = await p.kube.list_objects("networking.k8s.io/v1", "NetworkPolicy", ns)
    assert len(policies) == 2

    dep = await p.kube.get("apps/v1", "Deployment", ns, "web-r1")
    assert dep is not None
    pod_spec = dep["spec"]["template"]["spec"]
    assert pod_spec["runtimeClassName"] == "runc"
    assert "imagePullSecrets" not in pod_spec, "no Harbor configured: no pull secret"
    assert await p.kube.get("v1", "Secret", ns, "deploy-mcp-registry") is None
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    container = pod_spec["containers"][0]
    assert container["image"] == f"{REGISTRY}/{p.tenant}/web@{r['image_digest']}"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod_spec["nodeSelector"] == {"pool": "run"}
    assert {t["key"]: t.get("tolerationSeconds") for t in pod_spec["tolerations"]}[
        "node.kubernetes.io/unreachable"] == 15

    secret = await p.kube.get("v1", "Secret", ns, "web-r1-env")
    assert secret is not None
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert values == {"GREETING": "hi", "API_TOKEN": "s3cr3t-value-123"}

    pods = await p.kube.list_objects("v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}=web-r1")
    assert [x["status"]["phase"] for x in pods] == ["Running"]
    assert await selected_release(p, ns, "web") == "web-r1"
    ing = await p.kube.get("networking.k8s.io/v1", "Ingress", ns, "web")
    assert ing is not None and ing["spec"]["rules"][0]["host"] == f"web-shop-{p.tenant}.apps.localhost"
    assert await p.service_get(ns, "web", expect="hello v1") == "hello v1"
    host = r["url"].removeprefix("https://")
    assert await edge_get(edge, host) == "hello v1"
    assert await edge_get(edge, host, tls=True) == "hello v1"

    # the secret value is nowhere an agent or operator reads
    async with p.client() as c:
        seen = [str(ok(await c.call_tool(t, a))) for t, a in (
            ("apps", {"project": "shop", "app": "web"}),
            ("deployments", {"deployment_id": r["deployment_id"]}),
            ("deployments", {"project": "shop", "app": "web"}),
            ("get_audit_log", {}),
        )]
    assert not any("s3cr3t-value-123" in s for s in seen)
    assert isinstance(p.deps.store, PgStore)  # ServerDeps names the port; raw SQL needs the pool
    async with p.deps.store.pool.connection() as conn:
        audit = await (await conn.execute("SELECT arguments, workflow_id, k8s_refs FROM audit_events "
                                          "WHERE tool = 'create_app'")).fetchall()
    assert "s3cr3t-value-123" not in str(audit)
    assert audit[0]["arguments"]["secrets"] == {"API_TOKEN": "[redacted]"}
    assert audit[0]["workflow_id"] == f"deploy/{p.tenant}/shop/web/r1"
    assert f"Deployment/{ns}/web-r1" in audit[0]["k8s_refs"]


async def test_deploy_switches_the_service_and_keeps_the_previous_release(platform: Platform) -> None:
    p = platform
    v1, v2 = await web_image(p, "v1", "one"), await web_image(p, "v2", "two")
    async with p.client() as c:
        first = ok(await c.call_tool("create_app", {"project": "bg", "name": "web", "source": {"image": v1},
                                                    "port": 8080}))
        second = ok(await c.call_tool("deploy", {"project": "bg", "app": "web", "source": {"image": v2},
                                                 "env": {"MODE": "blue-green"}}))
        history = ok(await c.call_tool("deployments", {"project": "bg", "app": "web"}))
    assert first["phase"] == second["phase"] == "succeeded"
    ns = (await p.deps.store.get_app(p.tenant, "bg", "web")).namespace  # type: ignore[union-attr]
    assert await selected_release(p, ns, "web") == "web-r2"
    assert await p.service_get(ns, "web", expect="two") == "two"
    old = await p.kube.get("apps/v1", "Deployment", ns, "web-r1")
    assert old is not None and old["spec"]["replicas"] == 1  # kept scaled: rollback is a Service switch
    assert [(d["release"], d["serving"]) for d in history["deployments"]] == [("web-r2", True), ("web-r1", False)]
    assert history["serving_deployment_id"] == second["deployment_id"]


async def test_failed_releases_are_classified_and_the_previous_keeps_serving(platform: Platform) -> None:
    p = platform
    good = await web_image(p, "good", "still serving")
    # a manifest the registry has but whose layer it cannot serve: the node's pull fails
    broken = build_image(busybox_web_files(f"broken {uuid.uuid4()}"), cmd=BUSYBOX_HTTPD)
    async with httpx.AsyncClient(timeout=30) as h:
        await push_built_image(REGISTRY, f"{p.tenant}/broken", ["v1"], broken, h)
        d = await h.delete(f"http://{REGISTRY}/v2/{p.tenant}/broken/blobs/{broken.layer_digest}")
        assert d.status_code == 202
    crashing = f"{REGISTRY}/{p.tenant}/crash:v1"
    await push_image(REGISTRY, f"{p.tenant}/crash", "v1", busybox_web_files("x"),
                     cmd=["/busybox", "sh", "-c", "echo starting up; echo fatal: config missing >&2; exit 3"])
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "fail", "name": "web", "source": {"image": good},
                                            "port": 8080}))
        pull = ok(await c.call_tool("deploy", {"project": "fail", "app": "web",
                                               "source": {"image": f"{REGISTRY}/{p.tenant}/broken:v1"}}))
        crash = ok(await c.call_tool("deploy", {"project": "fail", "app": "web", "source": {"image": crashing}}))
        missing = await c.call_tool("deploy", {"project": "fail", "app": "web",
                                               "source": {"image": f"{REGISTRY}/{p.tenant}/nope:v9"}})
        detail = ok(await c.call_tool("deployments", {"deployment_id": crash["deployment_id"]}))
    assert pull["phase"] == "failed" and pull["error"]["reason"] == "ImagePullFailed", pull
    assert crash["phase"] == "failed" and crash["error"]["reason"] == "CrashLoop", crash
    # the container's last lines come with the failed wait, as untrusted app output
    assert any("fatal: config missing" in line for line in crash["app_output"]["lines"]), crash
    assert detail["error"]["hint"]
    assert missing.is_error and "source.image" in missing.content[0].text  # type: ignore[union-attr]
    ns = (await p.deps.store.get_app(p.tenant, "fail", "web")).namespace  # type: ignore[union-attr]
    assert await selected_release(p, ns, "web") == "web-r1"
    assert await p.service_get(ns, "web", expect="still serving") == "still serving"
    for failed in ("web-r2", "web-r3"):
        obj = await p.kube.get("apps/v1", "Deployment", ns, failed)
        assert obj is not None and obj["spec"]["replicas"] == 0  # kept for diagnosis, scaled to zero
    app = await p.deps.store.get_app(p.tenant, "fail", "web")
    assert app is not None and app.status == "running"


async def test_concurrent_retries_yield_one_release(platform: Platform) -> None:
    p = platform
    image = await web_image(p, "v1", "once")
    args = {"project": "idem", "name": "web", "source": {"image": image}, "port": 8080,
            "idempotency_key": "create-web-1", "wait_seconds": 0}
    async with p.client() as c:
        results = await asyncio.gather(*(c.call_tool("create_app", args) for _ in range(4)))
        ids = {ok(r)["deployment_id"] for r in results}
        assert len(ids) == 1
        again = ok(await c.call_tool("create_app", {k: v for k, v in args.items() if k != "wait_seconds"}))
        # same image and config without a key: deduplicated against the live release too
        plain = ok(await c.call_tool("deploy", {"project": "idem", "app": "web"}))
    assert again["deployment_id"] in ids and again["phase"] == "succeeded"
    assert plain["deployment_id"] in ids
    app = await p.deps.store.get_app(p.tenant, "idem", "web")
    assert app is not None
    assert len(await p.deps.store.list_deployments(app.id, 10)) == 1
    from temporalio.client import Client as TemporalClient
    from temporalio.contrib.pydantic import pydantic_data_converter

    tc = await TemporalClient.connect(p.settings.temporal.address or "", data_converter=pydantic_data_converter)
    runs = [w async for w in tc.list_workflows(f"WorkflowId = 'deploy/{p.tenant}/idem/web/r1'")]
    assert len(runs) == 1


async def test_delete_app_removes_its_objects_and_keeps_the_audit(platform: Platform) -> None:
    p = platform
    image = await web_image(p, "v1", "bye")
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "del", "name": "web", "source": {"image": image},
                                            "port": 8080}))
        ns = (await p.deps.store.get_app(p.tenant, "del", "web")).namespace  # type: ignore[union-attr]
        wrong = await c.call_tool("delete_app", {"project": "del", "app": "web", "confirm": "web"})
        gone = ok(await c.call_tool("delete_app", {"project": "del", "app": "web", "confirm": "del/web"}))
        apps = ok(await c.call_tool("apps", {"project": "del"}))
        audit = ok(await c.call_tool("get_audit_log", {"tool": "delete_app"}))
    assert wrong.is_error and "del/web" in wrong.content[0].text  # type: ignore[union-attr]
    assert gone["done"] and gone["status"] == "deleted"
    assert apps["apps"] == []
    assert [e["outcome"] for e in audit["entries"]] == ["ok", "invalid"]
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Secret"), ("v1", "Service"),
                              ("networking.k8s.io/v1", "Ingress")):
        left = await p.kube.list_objects(api_version, kind, ns, label_selector="deploy-mcp/app=web")
        assert left == [], kind


async def test_runtime_logs_from_the_pod_log_api_are_paged_and_masked(platform: Platform) -> None:
    """Without Loki (dev), get_runtime_logs reads the pod log API behind the same contract."""
    p = platform
    script = ("for i in 1 2 3 4 5; do echo request $i; done; echo level=error db password=$DB_PASSWORD; "
              "exec /busybox httpd -f -p 8080 -h /www")
    await push_image(REGISTRY, f"{p.tenant}/logger", "v1", busybox_web_files("x"), cmd=["/busybox", "sh", "-c", script])
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "logs", "name": "web", "port": 8080,
                                            "source": {"image": f"{REGISTRY}/{p.tenant}/logger:v1"},
                                            "secrets": {"DB_PASSWORD": "hunter2-hunter2"}}))
        first = ok(await c.call_tool("logs", {"project": "logs", "app": "web", "limit": 4,
                                                          "direction": "forward"}))
        rest = ok(await c.call_tool("logs", {"project": "logs", "app": "web", "limit": 50,
                                                         "direction": "forward", "cursor": first["next_cursor"]}))
        errors = ok(await c.call_tool("logs", {"project": "logs", "app": "web", "level": "error"}))
        labels = ok(await c.call_tool("logs", {"labels": True, "project": "logs", "app": "web"}))
    lines = [x["line"] for x in first["app_output"]["lines"] + rest["app_output"]["lines"]]
    assert lines[:5] == [f"request {i}" for i in range(1, 6)], lines
    assert "level=error db password=[secret:DB_PASSWORD]" in lines
    assert first["source"] == "kubernetes" and len(first["app_output"]["lines"]) == 4
    assert [x["line"] for x in errors["app_output"]["lines"]] == ["level=error db password=[secret:DB_PASSWORD]"]
    assert "hunter2-hunter2" not in str(first) + str(rest) + str(errors)
    assert labels
