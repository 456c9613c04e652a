"""The testbed is a real cluster: the API server answers through kubernetes_asyncio, the registry speaks the
OCI distribution API, and (as root) a real kubelet node is Ready."""

from __future__ import annotations

import httpx
import pytest
from kubernetes_asyncio import client, config

from mcp_server.devenv.embedded import Testbed

pytestmark = pytest.mark.cluster


async def test_api_server_answers(testbed: Testbed) -> None:
    api = await config.new_client_from_config(config_file=str(testbed.kubeconfig))
    async with api:
        version = await client.VersionApi(api).get_code()
        namespaces = await client.CoreV1Api(api).list_namespace()
    assert version.git_version.startswith("v1.")
    assert {"default", "kube-system"} <= {n.metadata.name for n in namespaces.items}


async def test_registry_speaks_distribution_api(testbed: Testbed) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.get(f"http://{testbed.registry}/v2/")
    assert r.status_code == 200
    assert r.headers.get("docker-distribution-api-version") == "registry/2.0"


async def test_node_is_ready(needs_node: Testbed) -> None:
    api = await config.new_client_from_config(config_file=str(needs_node.kubeconfig))
    async with api:
        nodes = await client.CoreV1Api(api).list_node()
    ready = [n.metadata.name for n in nodes.items
             if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    assert ready
