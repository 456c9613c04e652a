"""Opening the platform's connections once per process: the store, Temporal, and the server built on them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from mcp_server.auth import operator_principal
from mcp_server.config import Settings
from mcp_server.server import DeployMCP, ServerDeps, build_server
from mcp_server.store import PgStore
from tools._runtime import PlatformConfig

log = logging.getLogger(__name__)


def require_database_url(settings: Settings) -> str:
    url = settings.resolved_database_url()
    if not url:
        raise SystemExit(
            "deploy-mcp: no database. Set DATABASE_URL (or DEPLOY_MCP_DATABASE_URL), or run `deploy-mcp dev`, "
            "which starts an embedded Postgres."
        )
    return url


def platform_config(settings: Settings) -> PlatformConfig:
    return PlatformConfig(apps_domain=settings.apps_domain(), progress_wait_seconds=settings.progress_wait_seconds)


@asynccontextmanager
async def server_deps(settings: Settings, database_url: str) -> AsyncIterator[ServerDeps]:
    store = await PgStore.open(database_url)
    try:
        yield ServerDeps(store=store, config=platform_config(settings))
    finally:
        await store.close()


def make_server(settings: Settings, deps: ServerDeps, transport: str) -> DeployMCP:
    if transport == "http":
        return build_server(deps, transport="http", public_url=settings.mcp_url())
    return build_server(deps, transport=transport, principal=operator_principal(settings))


def http_server(settings: Settings, server: DeployMCP) -> uvicorn.Server:
    app = server.streamable_http_app(streamable_http_path=settings.http_path, host=settings.http_host)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning",
                            lifespan="on")
    return uvicorn.Server(config)
