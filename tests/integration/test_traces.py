"""One tool call is one trace: the MCP SDK's client and server spans, the server's `tool create_app` span,
Temporal's client span starting the deploy workflow, the workflow's span and every activity's (scheduled in the
workflow, run in the worker), all with the tool span's trace id, collected in memory (the real server, the real
deploy workflow and store activities on the Temporal dev server, stand-ins for the cluster's activities). A
Kubernetes request is its own client span under whatever span is current (the activity's in the worker), error
and status kept; the full chain down to the API server's requests runs on the testbed in
test_traces_on_testbed.py."""

from __future__ import annotations

import uuid

import pytest
from cryptography.fernet import Fernet
from kubernetes_asyncio import client as k8s
from mcp.client import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.telemetry import tracing
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tests.support.tracing import collected_spans
from tools.context import PlatformConfig, Principal
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.timeout(120)
KEY = Fernet.generate_key()
SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write"})


def hex_id(n: int) -> str:
    return f"{n:032x}"


async def test_a_tool_call_is_one_trace_through_the_workflow_and_its_activities(
        store: PgStore, temporal_address: str) -> None:
    with collected_spans() as spans:
        async with stand_in_worker(store, temporal_address, Cluster(), SecretBox(KEY),
                                   interceptors=tracing.temporal_interceptors()) as workflows:
            deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=30),
                              workflows=workflows, images=StandInImages(), secretbox=SecretBox(KEY))
            tenant = f"t{uuid.uuid4().hex[:6]}"
            server = build_server(deps, transport="memory", principal=Principal(tenant, "agent", SCOPES, "memory"))
            async with Client(server, mode="legacy") as c:
                r = await c.call_tool("create_app", {
                    "project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"},
                    "port": 8080, "wait_seconds": 30})
            assert not r.is_error, r.content
            result = r.structured_content
            assert result is not None and result["phase"] == "succeeded", result
        done: tuple[ReadableSpan, ...] = spans.get_finished_spans()

    tool = [s for s in done if s.name == "tool create_app"]
    assert len(tool) == 1, [s.name for s in done]
    assert tool[0].attributes is not None and tool[0].attributes["deploy_mcp.outcome"] == "ok"
    assert tool[0].attributes["deploy_mcp.tenant"] == tenant
    trace_id = tool[0].context.trace_id
    names = [s.name for s in done if s.context.trace_id == trace_id]
    assert "StartWorkflow:deploy" in names, names
    assert "RunWorkflow:deploy" in names, names
    for activity in ("set_phase", "apply_release", "wait_ready", "switch_service", "record_outcome"):
        assert f"StartActivity:{activity}" in names, (activity, names)
        assert f"RunActivity:{activity}" in names, (activity, names)
    # connected: every span of the trace but its root has its parent in the trace
    ids = {s.context.span_id for s in done if s.context.trace_id == trace_id}
    roots = [s for s in done if s.context.trace_id == trace_id and (s.parent is None or s.parent.span_id not in ids)]
    assert len(roots) == 1, [s.name for s in roots]
    # joined with the MCP SDK's own spans: its client's `MCP send` (the root: the trace context travels in the
    # request's `_meta`), its server's `tools/call`, then ours
    sdk = next(s for s in done if s.name == "tools/call create_app")
    assert tool[0].parent is not None and tool[0].parent.span_id == sdk.context.span_id
    assert roots[0].name == "MCP send tools/call create_app"
    # nothing of the secret-free arguments reached span attributes beyond the bounded ones
    assert not any("registry.test" in str(v) for s in done for v in (s.attributes or {}).values())


async def test_each_kubernetes_request_is_a_client_span_under_the_current_one() -> None:
    config = k8s.Configuration(host=f"http://127.0.0.1:{free_port()}")  # nothing listens: unreachable
    kube = Kube(k8s.ApiClient(config), request_timeout=2)
    tracer = trace.get_tracer("test")
    try:
        with collected_spans() as spans:
            with tracer.start_as_current_span("RunActivity:test") as parent, pytest.raises(KubeError):
                await kube.get("v1", "ConfigMap", "ns-a", "cm-a")
            done = spans.get_finished_spans()
    finally:
        await kube.close()
    request = next(s for s in done if s.name == "k8s GET")
    assert request.kind == trace.SpanKind.CLIENT
    assert request.parent is not None and request.parent.span_id == parent.get_span_context().span_id
    assert request.attributes is not None
    assert request.attributes["url.path"] == "/api/v1/namespaces/ns-a/configmaps/cm-a"
    assert request.attributes["error.type"] == "K8sUnreachable"
    assert request.status.status_code == trace.StatusCode.ERROR
