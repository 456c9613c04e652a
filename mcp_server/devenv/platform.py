"""The whole platform in one process on services it is given: a database, a Temporal server and the testbed
cluster, an in-process worker on a task queue of its own, and the MCP server built on them. What the
integration tests, the e2e slice and bench/ drive; part of the dev and test harness, not the product.

What else must run on the cluster for a test (the tests' fake Longhorn, where no storage controller runs) is
handed in by the caller (`beside`), so this harness never imports the tests.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from mcp.client import Client
from pydantic import BaseModel, SecretStr
from temporalio.worker import Worker

from mcp_server.devenv.edge import endpoint_urls
from mcp_server.devenv.embedded import Testbed
from mcp_server.flat_settings import merge, regroup
from mcp_server.server import DeployMCP, ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES, Settings, load_settings
from mcp_server.wiring import server_deps
from mcp_server.worker import worker
from tools.context import Principal
from workflows.adapters.kube import Kube
from workflows.domain.labels import LABEL_TENANT

ClusterService = Callable[[Kube], AbstractAsyncContextManager[object]]
"""Something that runs on the cluster beside the platform while it runs (given the platform's Kube)."""


@dataclass
class Platform:
    settings: Settings
    deps: ServerDeps
    kube: Kube
    tenant: str
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None

    def server(self, scopes: frozenset[str] = frozenset(ALL_SCOPES), tenant: str | None = None) -> DeployMCP:
        principal = Principal(tenant or self.tenant, "agent", scopes, "memory")
        return build_server(self.deps, transport="memory", principal=principal)

    def client(self, mode: str = "auto", **kw: Any) -> Client:
        return Client(self.server(**kw), mode=mode)

    async def start_worker(self) -> None:
        assert self.worker_task is None
        self._worker_cm = worker(self.settings)
        self.worker = await self._worker_cm.__aenter__()
        self.worker_task = asyncio.create_task(self.worker.run())

    async def service_get(self, namespace: str, service: str, path: str = "/", expect: str | None = None,
                          attempts: int = 300) -> str:
        """GET `path` from the Service's ready endpoints (pod IP and target port), as the edge does, until it
        answers 200 (and `expect`, when given); returns the body. Not through the ClusterIP: on this host a
        ClusterIP kube-proxy has not programmed yet leaves by the default route, whose gateway answers an empty
        404, so such a check would measure kube-proxy's lag, not the platform."""
        last = ""
        async with httpx.AsyncClient(timeout=5, trust_env=False) as h:
            for _ in range(attempts):
                urls = await service_urls(self.kube, namespace, service)
                if not urls:
                    last = "no ready endpoints"
                for url in urls:
                    try:
                        r = await h.get(url + path)
                        last = f"{url}: {r.status_code} {r.text[:100]}"
                        if r.status_code == 200 and (expect is None or r.text.strip() == expect):
                            return r.text.strip()
                    except httpx.HTTPError as e:
                        last = f"{url}: {e!r}"
                await asyncio.sleep(0.2)
        pods = await self.kube.list_objects("v1", "Pod", namespace)
        raise AssertionError(f"Service {namespace}/{service} never answered {expect or 200} on {path}; last: {last}; "
                             f"pods: {[(x['metadata']['name'], (x.get('status') or {}).get('phase')) for x in pods]}")

    async def stop_worker(self) -> None:
        if self.worker is not None and self.worker_task is not None:
            await self.worker.shutdown()
            await asyncio.gather(self.worker_task, return_exceptions=True)
            await self._worker_cm.__aexit__(None, None, None)
        self.worker, self.worker_task = None, None


async def service_urls(kube: Kube, namespace: str, service: str) -> list[str]:
    """http://pod-ip:target-port for each ready endpoint of the Service (its first port)."""
    return endpoint_urls(await kube.get("v1", "Endpoints", namespace, service))


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the environment of a child process (a worker a test starts and kills): every group as the
    JSON of `DEPLOY_MCP_<GROUP>`, secrets included, so the child loads exactly the same settings."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            plain = _plain(value)
            env[f"DEPLOY_MCP_{name.upper()}"] = json.dumps(plain) if isinstance(value, BaseModel) else str(plain)
    return env


def platform_settings(database_url: str, temporal_address: str, testbed: Testbed, **overrides: Any) -> Settings:
    """Settings for a platform on these services; `overrides` (grouped, or flat aliases) go on top."""
    values: dict[str, Any] = {
        "database": {"url": database_url},
        "temporal": {"address": temporal_address, "task_queue": f"tq-{uuid.uuid4().hex[:8]}"},
        "cluster": {"kubeconfig": testbed.worker_kubeconfig,  # least privilege: the install's ClusterRole
                    "runtime_class": "runc"},  # the testbed node's handler; the gVisor test sets `gvisor`
        "secrets_key": Fernet.generate_key().decode(),
        "releases": {"ready_timeout_seconds": 90, "rollback_window_seconds": 600},
        "progress": {"wait_seconds": 120},
        # off unless a test turns it on (tests/integration/test_reconcile_on_testbed.py): the other tests break
        # objects on purpose and watch what the workflows do about it
        "reconcile": {"enabled": False},
    }
    return load_settings(**merge(values, regroup(overrides)))


@asynccontextmanager
async def running_platform(settings: Settings, *, start_worker: bool = True,
                           beside: Sequence[ClusterService] = (), tenant: str | None = None,
                           ) -> AsyncIterator[Platform]:
    """The platform for a fresh tenant (or `tenant`, one a restored database holds), with `beside` running on
    its cluster; at exit the tenant's objects go."""
    tenant = tenant or f"t{uuid.uuid4().hex[:6]}"
    url = settings.database.url
    assert url
    kube = await Kube.connect(Testbed.admin_beside(settings.cluster.kubeconfig))
    async with AsyncExitStack() as services:
        services.push_async_callback(kube.close)
        for service in beside:
            await services.enter_async_context(service(kube))
        async with server_deps(settings, url) as deps:
            p = Platform(settings=settings, deps=deps, kube=kube, tenant=tenant)
            try:
                if start_worker:
                    await p.start_worker()
                yield p
            finally:
                await p.stop_worker()
                await remove_tenant_objects(kube, tenant)


async def remove_tenant_objects(kube: Kube, tenant: str, grace_wait: float = 20.0) -> None:
    """Free the testbed's nodes for the next test: the tenant's workloads stop (1 s grace, not a forced
    delete, so each pod's sandbox and IP are normally gone before a later pod can get that IP), then its
    namespaces go. Pods still there after `grace_wait` (a gVisor sandbox hangs in Terminating, a known runsc
    shim issue) are force-deleted."""
    namespaces = [ns["metadata"]["name"] for ns in await kube.list_objects(
        "v1", "Namespace", None, label_selector=f"{LABEL_TENANT}={tenant}")]
    for name in namespaces:
        for dep in await kube.list_objects("apps/v1", "Deployment", name):
            await kube.delete("apps/v1", "Deployment", name, dep["metadata"]["name"])
        for pod in await kube.list_objects("v1", "Pod", name):
            await kube.delete("v1", "Pod", name, pod["metadata"]["name"], grace_seconds=1)
    deadline = asyncio.get_running_loop().time() + grace_wait
    for name in namespaces:
        while (left := await kube.list_objects("v1", "Pod", name)) and (  # noqa: ASYNC110 - polling the API
                asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(0.5)
        for pod in left:
            await kube.delete("v1", "Pod", name, pod["metadata"]["name"], grace_seconds=0)
        await kube.delete("v1", "Namespace", None, name)
