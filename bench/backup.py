"""backup: time of `backup create` (pg_dump -> seal -> file://) and `backup restore` (verify the whole archive
-> pg_restore in one transaction -> migrate -> keys) for a database of a few thousand rows, beside the floor of
the same data through bare `pg_dump --format=custom` and `pg_restore --single-transaction` (no sealing, no
verifying pass, no records). Needs only the embedded Postgres (no testbed, no Temporal).

Run: .venv/bin/python bench/backup.py [--runs N] [--apps N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg.types.json import Jsonb

from mcp_server.backup import operations, postgres
from mcp_server.devenv.embedded import EmbeddedPostgres
from mcp_server.settings import load_settings
from mcp_server.store import migrate
from workflows.domain.secretbox import SecretBox


def with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def create_db(server: str) -> str:
    name = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_db(server, name)


def drop_db(server: str, url: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def seed(url: str, apps: int, box: SecretBox) -> int:
    """Tenants, projects, apps, three releases and two secrets versions per app, ten audit rows per app."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO tenants (name) SELECT 't' || g FROM generate_series(1, 20) g")
        cur.execute("INSERT INTO projects (tenant_id, name, namespace) SELECT t.id, 'p' || g, t.name || '-p' || g "
                    "FROM tenants t, generate_series(1, 5) g")
        cur.execute("SELECT id, namespace FROM projects ORDER BY namespace")
        projects = cur.fetchall()
        rows = [(projects[i % len(projects)][0], f"a{i}", Jsonb({"port": 8080, "replicas": 1, "env": {"I": str(i)}}),
                 f"a{i}-{projects[i % len(projects)][1]}.apps.bench") for i in range(apps)]
        cur.executemany("INSERT INTO apps (project_id, name, spec, hostname, status) VALUES (%s, %s, %s, %s, "
                        "'running')", rows)
        cur.execute("SELECT id FROM apps")
        ids = [r[0] for r in cur.fetchall()]
        cur.executemany("INSERT INTO secret_versions (app_id, version, names, ciphertext, created_by) VALUES "
                        "(%s, %s, %s, %s, 'bench')",
                        [(a, v, ["DB_PASSWORD"], box.seal({"DB_PASSWORD": os.urandom(12).hex()}))
                         for a in ids for v in (1, 2)])
        cur.execute("INSERT INTO deployments (app_id, seq, release_seq, kind, phase, source, config, workflow_id, "
                    "created_by) SELECT a.id, g, g, 'deploy', 'succeeded', '{\"image\": \"registry/x:1\"}', a.spec, "
                    "'deploy/' || a.id || '/' || g, 'bench' FROM apps a, generate_series(1, 3) g")
        cur.execute("INSERT INTO audit_events (tenant, principal, transport, tool, arguments, outcome, duration_ms) "
                    "SELECT 't1', 'bench', 'http', 'get_app', jsonb_build_object('app', 'a' || g), 'ok', 3 "
                    "FROM generate_series(1, %s) g", (apps * 10,))
        cur.execute("SELECT (SELECT count(*) FROM tenants) + (SELECT count(*) FROM projects) + "
                    "(SELECT count(*) FROM apps) + (SELECT count(*) FROM secret_versions) + "
                    "(SELECT count(*) FROM deployments) + (SELECT count(*) FROM audit_events)")
        total = cur.fetchone()
        conn.commit()
    return int(total[0]) if total else 0


def floor(url: str, server: str, work: Path) -> tuple[float, float, int]:
    """(seconds of bare pg_dump -Fc to a file, seconds of bare pg_restore into a fresh database, dump bytes)."""
    conninfo, env = postgres.connection(url)
    dump = work / "floor.pgdump"
    t0 = time.perf_counter()
    subprocess.run([postgres.tool("pg_dump", None), "--format=custom", f"--file={dump}", f"--dbname={conninfo}"],
                   check=True, env=env)
    t_dump = time.perf_counter() - t0
    fresh = create_db(server)
    try:
        target, env = postgres.connection(fresh)
        t0 = time.perf_counter()
        subprocess.run([postgres.tool("pg_restore", None), "--single-transaction", "--no-owner", "--no-privileges",
                        f"--dbname={target}", str(dump)], check=True, env=env)
        t_restore = time.perf_counter() - t0
    finally:
        drop_db(server, fresh)
    return t_dump, t_restore, dump.stat().st_size


async def measured(url: str, server: str, work: Path, key: str, secrets_key: str) -> tuple[float, float, int]:
    """(seconds of backup create, seconds of backup restore into a fresh database, archive bytes)."""
    target = work / "archives"
    target.mkdir(exist_ok=True)
    settings = load_settings(state_dir=work / "state", secrets_key=secrets_key, database={"url": url},
                             backup={"target": f"file://{target}", "key": key})
    t0 = time.perf_counter()
    created = await operations.create(settings)
    t_create = time.perf_counter() - t0
    fresh = create_db(server)
    try:
        restore_settings = load_settings(state_dir=work / "state", secrets_key=secrets_key,
                                         database={"url": fresh}, backup={"target": f"file://{target}", "key": key})
        t0 = time.perf_counter()
        await operations.restore(restore_settings, created.name)
        t_restore = time.perf_counter() - t0
    finally:
        drop_db(server, fresh)
    return t_create, t_restore, created.size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--apps", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deploy-mcp-bench-backup-"))
    os.chmod(work, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user when we are root
    pg = EmbeddedPostgres(work / "pg")
    server = pg.start()
    try:
        url = create_db(server)
        asyncio.run(migrate(url))
        secrets_key = SecretBox.generate_key()
        rows = seed(url, args.apps, SecretBox(secrets_key))
        key = base64.b64encode(os.urandom(32)).decode()
        ours = [asyncio.run(measured(url, server, work, key, secrets_key)) for _ in range(args.runs)]
        bare = [floor(url, server, work) for _ in range(args.runs)]
    finally:
        pg.stop()
    med = statistics.median
    print(f"database: {rows} rows ({args.apps} apps), {args.runs} runs each, median (min-max) seconds")
    print(f"{'':28}{'create/dump':>22}{'restore':>22}{'bytes':>12}")
    for label, runs in (("backup create/restore", ours), ("floor pg_dump/pg_restore", bare)):
        d, r, size = [x[0] for x in runs], [x[1] for x in runs], runs[-1][2]
        print(f"{label:28}{med(d):>10.3f} ({min(d):.3f}-{max(d):.3f}){med(r):>10.3f} ({min(r):.3f}-{max(r):.3f})"
              f"{size:>12}")


if __name__ == "__main__":
    main()
