"""`deploy-mcp`: serve, worker, migrate, preflight, dev, token, testbed."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from mcp_server.settings import ALL_SCOPES, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    """The settings with the flags given on top (a flag left out leaves env and file alone)."""
    http = {field: value for field in ("host", "port") if (value := getattr(args, f"http_{field}", None)) is not None}
    return load_settings(state_dir=getattr(args, "state_dir", None), http=http or None)


def cmd_migrate(args: argparse.Namespace) -> int:
    from mcp_server.startup import require_database_url
    from mcp_server.store import migrate

    settings = _settings(args)
    applied = asyncio.run(migrate(require_database_url(settings)))
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mcp_server.startup import require_database_url
    from mcp_server.wiring import http_server, make_server, server_deps

    settings = _settings(args)
    url = require_database_url(settings)

    async def run() -> None:
        async with server_deps(settings, url) as deps:
            if args.transport == "stdio":
                await make_server(settings, deps, "stdio").run_stdio_async()
            else:
                server = make_server(settings, deps, "http")
                print(f"deploy-mcp: serving MCP on {settings.http.mcp_url()} (bearer tokens required)", file=sys.stderr)
                await http_server(settings, server).serve()

    asyncio.run(run())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from mcp_server.worker import run_worker

    worker = {"health_port": args.health_port} if args.health_port is not None else None
    settings = load_settings(state_dir=getattr(args, "state_dir", None), worker=worker)
    asyncio.run(run_worker(settings))
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    """Exit 1 when the platform cannot work on the cluster (a check is missing), else 0 (warnings pass)."""
    from kubernetes_asyncio.config import ConfigException

    from mcp_server.preflight import preflight
    from workflows.adapters.kube import Kube
    from workflows.domain.preflight import format_report

    settings = _settings(args)

    async def run() -> int:
        try:
            kube = await Kube.connect(settings.cluster.kubeconfig)
        except (ConfigException, OSError) as e:
            print(f"deploy-mcp preflight: no cluster config ({e}); set KUBECONFIG or run in a pod", file=sys.stderr)
            return 1
        kube.timeout = settings.preflight.timeout_seconds
        try:
            report = await preflight(kube, settings)
        finally:
            await kube.close()
        if args.json:
            print(json.dumps({"ok": report.ok, "results": [r.model_dump() for r in report.results]}, indent=2))
        else:
            print("\n".join(format_report(report)))
        return 0 if report.ok else 1

    return asyncio.run(run())


def add_preflight_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pf = sub.add_parser("preflight", help="check the cluster for everything the platform relies on (exit 1: "
                                          "something is missing)")
    pf.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    pf.set_defaults(fn=cmd_preflight)


def cmd_dev(args: argparse.Namespace) -> int:
    from mcp_server.devenv.dev import run_dev

    return run_dev(_settings(args), cluster=args.cluster)


def cmd_token(args: argparse.Namespace) -> int:
    from mcp_server.auth import check_scopes, create_token
    from mcp_server.startup import require_database_url
    from mcp_server.store import PgStore

    settings = _settings(args)
    url = require_database_url(settings)

    async def run() -> int:
        store = await PgStore.open(url, min_size=1, max_size=1)
        try:
            if args.token_cmd == "create":  # noqa: S105
                try:
                    scopes = check_scopes(args.scope or list(ALL_SCOPES))
                except ValueError as e:
                    print(f"deploy-mcp token create: {e}", file=sys.stderr)
                    return 2
                expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
                token = await create_token(store, args.tenant, args.subject, scopes, expires)
                print(token)
                print(f"# tenant={args.tenant} subject={args.subject} scopes={','.join(scopes)}; shown once, "
                      "store it now", file=sys.stderr)
            elif args.token_cmd == "list":  # noqa: S105
                for row in await store.list_tokens(args.tenant):
                    print(json.dumps(row, default=str))
            elif args.token_cmd == "revoke":  # noqa: S105
                ok = await store.revoke_token(UUID(args.id))
                print("revoked" if ok else "no live token with that id")
                return 0 if ok else 1
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_testbed(args: argparse.Namespace) -> int:
    from mcp_server.devenv.embedded import Testbed
    from mcp_server.devenv.processes import ServiceError

    tb = Testbed()
    try:
        if args.testbed_cmd == "build":
            tb.build()
        elif args.testbed_cmd == "up":
            tb.build()
            kc = tb.up(node=args.node or args.nodes > 0, nodes=args.nodes or 1)
            print(f"export KUBECONFIG={kc}")
        elif args.testbed_cmd == "down":
            tb.down()
        elif args.testbed_cmd == "edge":
            from mcp_server.devenv.edge import serve_edge

            settings = _settings(args)
            run_dir = args.run_dir or settings.state_dir / "edge"
            asyncio.run(serve_edge(tb.kubeconfig, run_dir, settings.apps.domain(), args.http_port_edge,
                                   args.https_port_edge))
        elif args.testbed_cmd == "status":
            state = tb.running()
            for name, up in state.items():
                print(f"{name:12} {'running' if up else 'stopped'}")
            print(f"binaries: {'built' if tb.built() else 'not built'} in {tb.cache / 'bin'}")
            print(f"kubeconfig: {tb.kubeconfig}")
            return 0 if state["apiserver"] else 1
    except ServiceError as e:
        print(f"deploy-mcp testbed: {e}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deploy-mcp", description="The platform AI agents deploy software on.")
    p.add_argument("--state-dir", type=Path, help="override DEPLOY_MCP_STATE_DIR")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="serve the MCP tools (stdio or streamable HTTP)")
    s.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    s.add_argument("--host", dest="http_host")
    s.add_argument("--port", dest="http_port", type=int)
    s.set_defaults(fn=cmd_serve)

    add_worker_parser(sub)
    add_preflight_parser(sub)
    sub.add_parser("migrate", help="apply the Postgres schema migrations").set_defaults(fn=cmd_migrate)

    d = sub.add_parser("dev", help="everything on embedded defaults: Postgres, Temporal, testbed, worker, HTTP")
    d.add_argument("--cluster", choices=["auto", "testbed", "none"], default="auto",
                   help="auto: KUBECONFIG if set, else the local testbed when root; none: no cluster")
    d.add_argument("--port", dest="http_port", type=int)
    d.set_defaults(fn=cmd_dev)

    t = sub.add_parser("token", help="API tokens for the HTTP transport")
    tsub = t.add_subparsers(dest="token_cmd", required=True)
    tc = tsub.add_parser("create", help="create a token and print it once")
    tc.add_argument("--tenant", required=True)
    tc.add_argument("--subject", default="agent")
    tc.add_argument("--scope", action="append", help=f"repeatable; default all of {', '.join(ALL_SCOPES)}")
    tc.add_argument("--expires-days", type=int)
    tl = tsub.add_parser("list", help="list tokens (never their values)")
    tl.add_argument("--tenant")
    tr = tsub.add_parser("revoke", help="revoke a token by id")
    tr.add_argument("id")
    t.set_defaults(fn=cmd_token)

    tb = sub.add_parser("testbed", help="the local Kubernetes testbed (real control plane + kubelet node)")
    tbsub = tb.add_subparsers(dest="testbed_cmd", required=True)
    tbsub.add_parser("build", help="build the Kubernetes binaries once (cached)")
    up = tbsub.add_parser("up", help="start control plane and registry (+ node with --node, root)")
    up.add_argument("--node", action="store_true", help="start kubelet node1 (root)")
    up.add_argument("--nodes", type=int, default=0, choices=[0, 1, 2], help="how many kubelet nodes (root)")
    tbsub.add_parser("down", help="stop everything the testbed started")
    tbsub.add_parser("status", help="which testbed processes run")
    ed = tbsub.add_parser("edge", help="Traefik on 127.0.0.1 serving the testbed's Ingresses (foreground)")
    ed.add_argument("--http-port", dest="http_port_edge", type=int, default=8080)
    ed.add_argument("--https-port", dest="https_port_edge", type=int, default=8443)
    ed.add_argument("--run-dir", type=Path)
    tb.set_defaults(fn=cmd_testbed)
    return p


def add_worker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("worker", help="run the Temporal worker that reconciles the cluster")
    w.add_argument("--health-port", type=int, help="port of /healthz and /readyz (worker.health_port; 0: none)")
    w.set_defaults(fn=cmd_worker)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "temporalio.activity", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
