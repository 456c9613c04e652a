"""`deploy-mcp`: serve, worker, migrate, preflight, dev, token, backup, secrets, testbed."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn
from uuid import UUID

from mcp_server.settings import ALL_SCOPES, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    """The settings with the flags given on top (a flag left out leaves env and file alone)."""
    http = {field: value for field in ("host", "port") if (value := getattr(args, f"http_{field}", None)) is not None}
    return load_settings(state_dir=getattr(args, "state_dir", None), http=http or None)


def _telemetry(settings: Settings, service: str, verbose: bool) -> None:
    """The process's log format and, with `telemetry.otlp_endpoint`, its traces (before any Temporal client)."""
    from mcp_server.telemetry import logs, tracing

    if settings.telemetry.log_format != "text":
        logs.configure(settings.telemetry.log_format, logging.DEBUG if verbose else logging.INFO)
    tracing.install(settings.telemetry, service)


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
    _telemetry(settings, "deploy-mcp-server", args.verbose)

    async def run() -> None:
        async with server_deps(settings, url) as deps:
            if args.transport == "stdio":
                await make_server(settings, deps, "stdio").run_stdio_async()
            else:
                server = make_server(settings, deps, "http")
                print(f"deploy-mcp: serving MCP on {settings.http.mcp_url()} (bearer tokens required)", file=sys.stderr)
                await http_server(settings, server).serve()

    from mcp_server.telemetry import tracing

    try:
        asyncio.run(run())
    finally:
        tracing.shutdown()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from mcp_server.worker import run_worker

    worker = {"health_port": args.health_port} if args.health_port is not None else None
    settings = load_settings(state_dir=getattr(args, "state_dir", None), worker=worker)
    _telemetry(settings, "deploy-mcp-worker", args.verbose)
    from mcp_server.telemetry import tracing

    try:
        asyncio.run(run_worker(settings))
    finally:
        tracing.shutdown()
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
    from mcp_server.telemetry import tracing

    settings = _settings(args)
    _telemetry(settings, "deploy-mcp-dev", args.verbose)  # text logs and no tracing unless configured
    try:
        return run_dev(settings, cluster=args.cluster)
    finally:
        tracing.shutdown()


def cmd_token(args: argparse.Namespace) -> int:
    from mcp_server.auth import check_scopes, check_toolsets, create_token
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
                    toolsets = check_toolsets(args.toolset) if args.toolset else None
                except ValueError as e:
                    print(f"deploy-mcp token create: {e}", file=sys.stderr)
                    return 2
                expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
                token = await create_token(store, args.tenant, args.subject, scopes, expires,
                                           read_only=args.read_only, toolsets=toolsets)
                print(token)
                offers = ("read-only tools" if args.read_only else "tools") + (
                    f" of {','.join(toolsets)}" if toolsets else "")
                print(f"# tenant={args.tenant} subject={args.subject} scopes={','.join(scopes)}, offered {offers}; "
                      "shown once, store it now", file=sys.stderr)
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


def cmd_backup(args: argparse.Namespace) -> int:
    """`backup create|list|restore|verify` (mcp_server.backup). A failure is logged and exits 1, so a CronJob's
    status shows it; `create` also records it in backup_runs when the database answers."""
    from mcp_server.backup import operations
    from mcp_server.backup.seal import BackupError
    from tools.ports import StoreError

    settings = _settings(args)
    log = logging.getLogger("deploy-mcp.backup")
    try:
        if args.backup_cmd == "create":
            created = asyncio.run(operations.create(settings, args.target, args.keep))
            print(f"backup {created.name}: {created.size} bytes (dump {created.manifest.dump_size} bytes, "
                  f"schema {created.manifest.schema_version}) at {created.target}")
            for name in created.deleted:
                print(f"retention: deleted {name}")
        elif args.backup_cmd == "list":
            target, stored, runs = asyncio.run(operations.listing(settings, args.target, args.limit))
            print(f"archives at {target}:")
            if isinstance(stored, str):
                print(f"  cannot list: {stored}")
            for a in stored if not isinstance(stored, str) else []:
                print(f"  {a.name}  {a.size} bytes")
            print("runs (newest first):")
            if isinstance(runs, str):
                print(f"  cannot read backup_runs: {runs}")
            for r in runs if not isinstance(runs, str) else []:
                print(f"  {r.started_at:%Y-%m-%d %H:%M:%S%z}  {r.kind:7}  {r.status:7}  {r.name or '-'}  "
                      f"{r.size_bytes if r.size_bytes is not None else '-'} bytes  {r.target}"
                      + (f"  error: {r.error}" if r.error else ""))
        elif args.backup_cmd == "verify":
            name, opened, size = asyncio.run(operations.verify(settings, args.source))
            print(f"backup {name}: {size} bytes, every chunk authentic, dump SHA-256 matches")
            print(opened.manifest.model_dump_json(indent=2))
        elif args.backup_cmd == "restore":
            restored = asyncio.run(operations.restore(settings, args.source, force=args.force,
                                                      secrets_key_file=args.secrets_key_file))
            print(f"restored {restored.name} from {restored.source} (made {restored.manifest.created_at} by "
                  f"deploy-mcp {restored.manifest.platform_version}, schema {restored.manifest.schema_version})")
            if restored.migrated:
                print(f"migrated: {', '.join(restored.migrated)}")
            if restored.keys_written_to is not None:
                print(f"secrets keys written to {restored.keys_written_to} (0600); the platform must run with "
                      "them (DEPLOY_MCP_SECRETS_KEY, or that file as <state_dir>/secrets.key)")
    except (BackupError, StoreError) as e:
        log.error("backup %s failed: %s", args.backup_cmd, e)
        return 1
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    """`secrets rotate`: re-encrypt every stored ciphertext under the current (first) secrets key."""
    from mcp_server.startup import load_secretbox, require_database_url
    from mcp_server.store import PgStore
    from workflows.domain.secretbox import SecretBoxError

    settings = _settings(args)
    url = require_database_url(settings)
    box = load_secretbox(settings)

    def rotate(token: bytes) -> bytes | None:
        if box.is_current(token):
            return None
        try:
            return box.rotate(token)
        except SecretBoxError as e:
            raise ValueError(str(e)) from e

    async def run() -> int:
        store = await PgStore.open(url, min_size=1, max_size=1)
        try:
            counts = await store.rotate_ciphertexts(rotate, batch_size=args.batch_size)
        finally:
            await store.close()
        failed = 0
        for table, c in counts.items():
            print(f"{table}: {c.rotated} re-encrypted, {c.current} already under the current key"
                  + (f", {len(c.unreadable)} unreadable with every configured key: {', '.join(c.unreadable)}"
                     if c.unreadable else ""))
            failed += len(c.unreadable)
        if failed:
            print("some ciphertext opens with no configured key: keep the old keys until it is found",
                  file=sys.stderr)
        return 1 if failed else 0

    return asyncio.run(run())


def cmd_db_dump(args: argparse.Namespace) -> int:
    """`db-dump`: one dump of an app's database (mcp_server.backup.databases), run by its backup job. The role
    and password come from PGUSER/PGPASSWORD (a Secret), never the command line. A failure is recorded and
    exits 1."""
    from mcp_server.backup import databases
    from mcp_server.backup.seal import BackupError
    from tools.ports import StoreError

    settings = _settings(args)
    log = logging.getLogger("deploy-mcp.db-dump")
    user, password = os.environ.get("PGUSER"), os.environ.get("PGPASSWORD")
    if not user or not password:
        log.error("db-dump needs PGUSER and PGPASSWORD in its environment (the database's credentials Secret)")
        return 1
    url = databases.database_url(args.host, args.dbname, user, password)
    try:
        done = asyncio.run(databases.dump(settings, args.database_id, url, args.kind, args.keep, args.max_age_days,
                                          args.name))
    except (BackupError, StoreError) as e:
        log.error("db-dump failed: %s", e)
        return 1
    print(f"db-dump {done.name}: {done.size} bytes at {done.target}")
    for name in done.deleted:
        print(f"retention: deleted {name}")
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    """`db-restore`: a dump (verified whole first) into an app's database, in one transaction; run by the
    restore job after its safety dump. Credentials from PGUSER/PGPASSWORD."""
    from mcp_server.backup import databases
    from mcp_server.backup.seal import BackupError
    from tools.ports import StoreError

    settings = _settings(args)
    log = logging.getLogger("deploy-mcp.db-restore")
    user, password = os.environ.get("PGUSER"), os.environ.get("PGPASSWORD")
    if not user or not password:
        log.error("db-restore needs PGUSER and PGPASSWORD in its environment (the database's credentials Secret)")
        return 1
    url = databases.database_url(args.host, args.dbname, user, password)
    try:
        done = asyncio.run(databases.restore(settings, args.database_id, url, args.name, args.from_database_id))
    except (BackupError, StoreError) as e:
        log.error("db-restore failed: %s", e)
        return 1
    print(f"db-restore {done.name} from {done.source}: done")
    return 0


def _db_dump_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("db-dump", help="dump an app's database to the backup target (its backup job runs this)")
    d.add_argument("--database-id", type=uuid.UUID, required=True)
    d.add_argument("--host", required=True)
    d.add_argument("--dbname", required=True)
    d.add_argument("--kind", choices=["scheduled", "manual", "safety", "final"], default="scheduled")
    d.add_argument("--keep", type=int, default=7, help="dumps kept (newest first)")
    d.add_argument("--max-age-days", type=int, default=30, help="dumps older than this are deleted")
    d.add_argument("--name", help="the dump's name (default: deploy-mcp-<UTC time>.dmcpbak)")
    d.set_defaults(fn=cmd_db_dump)
    r = sub.add_parser("db-restore", help="restore a dump into an app's database (its restore job runs this)")
    r.add_argument("--database-id", type=uuid.UUID, required=True)
    r.add_argument("--host", required=True)
    r.add_argument("--dbname", required=True)
    r.add_argument("--name", required=True, help="the dump to restore")
    r.add_argument("--from-database-id", type=uuid.UUID, help="the dump's database (default: the same one)")
    r.set_defaults(fn=cmd_db_restore)


def _backup_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("backup", help="Plane A backups: the database and the secrets keys, sealed")
    bsub = b.add_subparsers(dest="backup_cmd", required=True)
    bc = bsub.add_parser("create", help="dump, seal and store one backup (then apply retention)")
    bc.add_argument("--target", help="file:///dir or s3://bucket/prefix (default: backup.target)")
    bc.add_argument("--keep", type=int, help="keep this many backups at the target (default: backup.keep)")
    bl = bsub.add_parser("list", help="the backups at the target and the recorded runs")
    bl.add_argument("--target")
    bl.add_argument("--limit", type=int, default=20)
    for name, what in (("verify", "check a backup whole (every chunk, the dump's SHA-256); touches no database"),
                       ("restore", "verify a backup, then restore it into the configured, empty database")):
        c = bsub.add_parser(name, help=what)
        c.add_argument("source", nargs="?", default="latest",
                       help="an archive's URL, its name in backup.target, or `latest` (default)")
        if name == "restore":
            c.add_argument("--force", action="store_true", help="replace everything in a non-empty database")
            c.add_argument("--secrets-key-file", type=Path, help="write the backup's secrets keys here (0600)")
    b.set_defaults(fn=cmd_backup)

    s = sub.add_parser("secrets", help="the secrets encryption key")
    ssub = s.add_subparsers(dest="secrets_cmd", required=True)
    sr = ssub.add_parser("rotate", help="re-encrypt every stored secret under the first key of secrets_key")
    sr.add_argument("--batch-size", type=int, default=200)
    s.set_defaults(fn=cmd_secrets)


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
    tc.add_argument("--read-only", action="store_true", help="offer and allow only read-only tools")
    tc.add_argument("--toolset", action="append",
                    help="repeatable; offer only these toolsets (apps, logs, volumes, domains, databases, admin)")
    tl = tsub.add_parser("list", help="list tokens (never their values)")
    tl.add_argument("--tenant")
    tr = tsub.add_parser("revoke", help="revoke a token by id")
    tr.add_argument("id")
    t.set_defaults(fn=cmd_token)

    _backup_parser(sub)
    _db_dump_parser(sub)

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


def exit_without_finalizing(code: int) -> NoReturn:
    """Out of the process without the interpreter's finalization. Temporal's Rust core keeps native threads that
    take the GIL; one doing so while the interpreter finalizes aborts the process (SIGABRT, "PyGILState_Release:
    thread state ... must be current", temporalio/sdk-python#300), turning a clean drain into exit -6 for the
    kubelet. Only for a process's last step, when everything it opened is closed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run() -> NoReturn:
    """The `deploy-mcp` command."""
    exit_without_finalizing(main())


if __name__ == "__main__":
    run()
