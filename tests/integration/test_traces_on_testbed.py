"""On the testbed (cluster marker; the lead runs it): one `create_app` through an MCP client is one connected
trace from the MCP SDK's spans and the server's `tool create_app` span through Temporal's workflow and activity
spans down to the worker's requests to the real API server (`k8s PATCH` server-side applies under
`RunActivity:apply_release`), collected in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import ok, running_platform
from tests.support.tracing import collected_spans

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def traced() -> AsyncIterator[None]:
    with collected_spans():
        yield


@pytest.fixture
async def platform(traced: None, database_url: str, temporal_address: str, needs_node: Testbed
                   ) -> AsyncIterator[Platform]:
    # tracing is on before the platform connects to Temporal: its client and worker get the interceptor
    settings = platform_settings(database_url, temporal_address, needs_node)
    async with running_platform(settings) as p:
        yield p


async def test_create_app_is_one_trace_down_to_the_api_server(platform: Platform) -> None:
    p = platform
    repo = f"{p.tenant}/web"
    await push_image(REGISTRY, repo, "v1", busybox_web_files("traced"), cmd=BUSYBOX_HTTPD)
    with collected_spans() as spans:
        async with p.client() as c:
            result = ok(await c.call_tool("create_app", {
                "project": "shop", "name": "web", "source": {"image": f"{REGISTRY}/{repo}:v1"}, "port": 8080,
                "wait_seconds": 240}))
        assert result["phase"] == "succeeded", result
        done = spans.get_finished_spans()
    tool = next(s for s in done if s.name == "tool create_app")
    trace_id = tool.context.trace_id
    mine = [s for s in done if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine}
    names = {s.name for s in mine}
    assert {"tools/call create_app", "StartWorkflow:deploy", "RunWorkflow:deploy", "RunActivity:apply_release",
            "RunActivity:switch_service"} <= names, sorted(names)
    applies = [s for s in mine if s.name == "k8s PATCH"]
    assert applies, sorted(names)

    def ancestors(span_id: int) -> list[str]:
        chain = []
        while (s := by_id.get(span_id)) is not None:
            chain.append(s.name)
            span_id = s.parent.span_id if s.parent is not None else 0
        return chain

    # a server-side apply of the release sits under its activity, under the workflow's start, under the tool call
    # (temporalio's interceptor parents an activity's spans on the workflow's StartWorkflow span; RunWorkflow is
    # its sibling, checked below to be in the same trace)
    chain = next(ancestors(s.context.span_id) for s in applies
                 if "RunActivity:apply_release" in ancestors(s.context.span_id))
    for name in ("k8s PATCH", "RunActivity:apply_release", "StartActivity:apply_release", "StartWorkflow:deploy",
                 "tool create_app", "tools/call create_app"):
        assert name in chain, chain
    assert any(s.name == "RunWorkflow:deploy" for s in mine), sorted({s.name for s in mine})
    roots = [s for s in mine if s.parent is None or s.parent.span_id not in by_id]
    assert len(roots) == 1, [s.name for s in roots]
