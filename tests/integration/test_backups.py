"""Plane A backups on a real (embedded) Postgres with the real pg_dump/pg_restore: a backup of a platform's
records (projects, apps, secrets versions, git credentials, Harbor robots) restored into a fresh database is
identical and its secrets decrypt with the restored key; the archive shows nothing in clear; a wrong backup key,
a flipped byte or a truncated file is refused before the target database is touched (even with --force, whose
dropping comes after the check); a non-empty target is refused; retention keeps N and only its own names
(a killed run's stale `.partial` is swept);
every run is recorded (ok, failed) and the operator's whoami shows the last success and failure, a tenant's
agent nothing; an unreachable database fails the command with a non-zero exit; s3:// against the fake S3
(signed requests, a multipart upload, listing, deletes)."""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp.client import Client

from mcp_server.backup import operations, targets
from mcp_server.backup.seal import BackupDamaged, BackupError, BackupKeyError
from mcp_server.backup.targets import archive_name
from mcp_server.cli import main
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import Settings, load_settings
from mcp_server.store import PgStore
from tests.fakes.fake_s3 import fake_s3
from tests.support.platform import ok
from tests.support.records import ciphertexts, seed
from tools.context import PlatformConfig, Principal
from workflows.domain.secretbox import SecretBox

KEY = base64.b64encode(b"B" * 32).decode()
OTHER_KEY = base64.b64encode(b"X" * 32).decode()
SECRETS_KEY = SecretBox.generate_key()
TABLES = ["tenants", "projects", "apps", "secret_versions", "git_credentials", "harbor_robots", "deployments",
          "api_tokens", "schema_migrations"]


def settings_for(url: str, target: str, state: Path, key: str = KEY, secrets_key: str | None = SECRETS_KEY,
                 **backup: Any) -> Settings:
    return load_settings(state_dir=state, secrets_key=secrets_key, database={"url": url},
                         backup={"target": target, "key": key, **backup})


@contextmanager
def new_database(server_url: str) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def marked_database(server_url: str) -> Iterator[str]:
    """A database holding one marker row: still there afterwards means the restore never touched it."""
    with new_database(server_url) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (note text)")
            conn.execute("INSERT INTO marker VALUES ('untouched')")
        yield url


def marker(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT note FROM marker").fetchall()]


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


def runs(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT kind, status, name, target, error, size_bytes FROM backup_runs "
                            "ORDER BY id").fetchall()


@pytest.fixture
def backups_dir(tmp_path: Path) -> Path:
    d = tmp_path / "backups"
    d.mkdir()
    return d


async def test_a_restored_database_is_identical_and_its_secrets_decrypt(
        database_url: str, pg_server_url: str, tmp_path: Path, backups_dir: Path) -> None:
    store = await PgStore.open(database_url)
    try:
        await seed(store, SecretBox(SECRETS_KEY))
    finally:
        await store.close()
    created = await operations.create(settings_for(database_url, f"file://{backups_dir}", tmp_path / "s"))
    archive = (backups_dir / created.name).read_bytes()
    assert created.size == len(archive) and created.manifest.schema_version >= 9
    for clear in (b"hunter2", b"acme", b"web-shop-acme", SECRETS_KEY.encode(), b"PGDMP", b"backup_runs"):
        assert clear not in archive
    before = snapshot(database_url)

    # the disaster: the database is gone; a new, empty one of the same name takes its place
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    keys_file = tmp_path / "restored" / "secrets.key"
    restored = await operations.restore(settings_for(database_url, f"file://{backups_dir}", tmp_path / "s2",
                                                     secrets_key=None), "latest", secrets_key_file=keys_file)
    assert restored.name == created.name and restored.keys_written_to == keys_file
    assert snapshot(database_url) == before
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    box = SecretBox(keys_file.read_text())
    opened = [box.open(c) for c in ciphertexts(database_url)]
    assert {"DB_PASSWORD": "hunter2"} in opened and {"secret": "robot-password"} in opened
    assert [(k, s, n) for k, s, n, *_ in runs(database_url)] == [("create", "ok", created.name),
                                                                ("restore", "ok", created.name)]

    # the same archive restores into another fresh database as well (a second drill leaves the first alone)
    with new_database(pg_server_url) as fresh:
        await operations.restore(settings_for(fresh, f"file://{backups_dir}", tmp_path / "s3"), created.name)
        assert snapshot(fresh) == before


async def test_another_backup_key_is_refused_naming_the_setting_before_the_target_is_touched(
        store: PgStore, database_url: str, pg_server_url: str, tmp_path: Path, backups_dir: Path) -> None:
    await operations.create(settings_for(database_url, f"file://{backups_dir}", tmp_path / "s"))
    with marked_database(pg_server_url) as target:
        with pytest.raises(BackupKeyError, match=r"sealed with another backup key.*backup\.key"):
            await operations.restore(settings_for(target, f"file://{backups_dir}", tmp_path / "s",
                                                  key=OTHER_KEY), "latest", force=True)
        assert marker(target) == ["untouched"]
        # a key list holding the sealing key (the old one, after a backup key change) opens it
        await operations.restore(settings_for(target, f"file://{backups_dir}", tmp_path / "s",
                                              key=f"{OTHER_KEY},{KEY}"), "latest", force=True)
        with pytest.raises(psycopg.errors.UndefinedTable):
            marker(target)


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "truncated at a chunk boundary"])
async def test_a_damaged_archive_is_detected_before_the_target_is_touched(
        store: PgStore, database_url: str, pg_server_url: str, tmp_path: Path, backups_dir: Path,
        damage: str) -> None:
    # enough rows for a dump of several 64 KiB chunks
    async with store.pool.connection() as conn:
        await conn.execute("CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g")
    created = await operations.create(settings_for(database_url, f"file://{backups_dir}", tmp_path / "s"))
    path = backups_dir / created.name
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 65552
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncated":
        del data[-1000:]
    else:
        del data[84 + 2 * 65552:]
    path.write_bytes(bytes(data))
    with marked_database(pg_server_url) as target:
        s = settings_for(target, f"file://{backups_dir}", tmp_path / "s")
        with pytest.raises(BackupDamaged, match=r"damaged|truncated"):
            await operations.verify(s, created.name)
        with pytest.raises(BackupDamaged, match=r"damaged|truncated"):
            await operations.restore(s, created.name, force=True)
        assert marker(target) == ["untouched"]


async def test_a_non_empty_target_is_refused_without_force(
        store: PgStore, database_url: str, tmp_path: Path, backups_dir: Path) -> None:
    s = settings_for(database_url, f"file://{backups_dir}", tmp_path / "s")
    await operations.create(s)
    with pytest.raises(BackupError, match=r"not empty .*--force"):
        await operations.restore(s, "latest")


async def test_retention_keeps_the_newest_n_and_only_touches_its_own_names(
        store: PgStore, database_url: str, tmp_path: Path, backups_dir: Path) -> None:
    (backups_dir / "notes.txt").write_text("mine")
    (backups_dir / "deploy-mcp-manual.dmcpbak").write_text("also mine")
    killed, running = (backups_dir / f".{archive_name(datetime(2026, 1, d, tzinfo=UTC))}.partial" for d in (1, 2))
    killed.write_text("a run killed a day ago")
    os.utime(killed, (time.time() - 86400, time.time() - 86400))
    running.write_text("a run in progress")
    s = settings_for(database_url, f"file://{backups_dir}", tmp_path / "s", keep=5)
    made = [(await operations.create(s, keep=2)) for _ in range(3)]
    assert made[0].deleted == [] and made[1].deleted == [] and made[2].deleted == [made[0].name]
    assert sorted(os.listdir(backups_dir)) == sorted(
        ["notes.txt", "deploy-mcp-manual.dmcpbak", running.name, made[1].name, made[2].name])


async def test_every_run_is_recorded_and_the_operator_sees_the_last_success_and_failure(
        store: PgStore, database_url: str, tmp_path: Path, backups_dir: Path) -> None:
    s = settings_for(database_url, f"file://{backups_dir}", tmp_path / "s")
    good = await operations.create(s)
    with pytest.raises(BackupError, match="not a directory"):
        await operations.create(s, target_url=f"file://{tmp_path}/missing")
    with pytest.raises(BackupError, match=r"no backup key: set backup\.key"):
        await operations.create(settings_for(database_url, f"file://{backups_dir}", tmp_path / "s", key=""))
    recorded = runs(database_url)
    assert [(k, st) for k, st, *_ in recorded] == [("create", "ok"), ("create", "failed"), ("create", "failed")]
    assert recorded[0][2] == good.name and recorded[0][5] == good.size and recorded[0][4] is None
    assert "not a directory" in recorded[1][4] and recorded[1][3] == f"file://{tmp_path}/missing"
    assert "no backup key" in recorded[2][4]

    _, stored, listed = await operations.listing(s)
    assert [a.name for a in stored] == [good.name]  # type: ignore[union-attr]
    assert [r.status for r in listed] == ["failed", "failed", "ok"]  # type: ignore[union-attr]

    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"))
    operator = build_server(deps, transport="memory",
                            principal=Principal("local", "operator", frozenset({"platform:read"}), "stdio"))
    agent = build_server(deps, transport="memory", principal=Principal("acme", "agent", frozenset(), "http-token"))
    async with Client(operator) as c:
        seen = ok(await c.call_tool("whoami", {}))["backups"]
    assert seen["last_success_name"] == good.name and "no backup key" in seen["last_failure_error"]
    assert seen["warning"] == "the last backup failed; see `deploy-mcp backup list`"
    async with Client(agent) as c:
        assert ok(await c.call_tool("whoami", {}))["backups"] is None


def test_an_unreachable_database_fails_the_command(
        tmp_path: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DEPLOY_MCP_DATABASE__URL", f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__TARGET", f"file://{backups_dir}")
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__KEY", KEY)
    monkeypatch.setenv("DEPLOY_MCP_STATE_DIR", str(tmp_path / "s"))
    with caplog.at_level(logging.ERROR):
        assert main(["backup", "create"]) == 1
    assert "backup create failed: the database cannot be reached" in caplog.text
    assert KEY not in caplog.text and list(backups_dir.iterdir()) == []


def test_the_commands_report_and_exit_by_outcome(
        database_url: str, tmp_path: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEPLOY_MCP_DATABASE__URL", database_url)
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__TARGET", f"file://{backups_dir}")
    key_file = tmp_path / "backup.key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__KEY_FILE", str(key_file))
    monkeypatch.setenv("DEPLOY_MCP_SECRETS_KEY", SECRETS_KEY)
    assert main(["backup", "create", "--keep", "3"]) == 0
    assert main(["backup", "verify"]) == 0
    assert main(["backup", "list"]) == 0
    out = capsys.readouterr().out
    assert "every chunk authentic" in out and '"schema_version"' in out and " create   ok " in out
    key_file.write_text(OTHER_KEY)
    assert main(["backup", "verify", "latest"]) == 1
    assert SECRETS_KEY not in out


async def test_s3_target_uploads_multipart_lists_prunes_and_restores(
        store: PgStore, database_url: str, pg_server_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    await seed(store, SecretBox(SECRETS_KEY))
    async with store.pool.connection() as conn:  # incompressible: the archive outgrows one 5 MiB part
        await conn.execute("CREATE TABLE blobs (b bytea)")
        await conn.execute("INSERT INTO blobs VALUES (%s)", (os.urandom(6 * 1024 * 1024),))
    monkeypatch.setattr(targets, "S3_PART_SIZE", 5 * 1024 * 1024)
    with fake_s3("platform-backups") as s3:
        s3_settings = {"endpoint_url": s3.endpoint, "region": s3.region, "access_key_id": s3.access_key,
                       "secret_access_key": s3.secret_key}
        target = "s3://platform-backups/prod/plane-a"
        s = settings_for(database_url, target, tmp_path / "s", **s3_settings)
        first = await operations.create(s, keep=1)
        second = await operations.create(s, keep=1)
        assert second.deleted == [first.name]
        assert list(s3.buckets["platform-backups"]) == [f"prod/plane-a/{second.name}"]
        ops = s3.operations()
        assert {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2",
                "DeleteObject"} <= set(ops) and "PutObject" not in ops
        assert not s3.uploads

        before = snapshot(database_url)
        with new_database(pg_server_url) as fresh:
            restored = await operations.restore(settings_for(fresh, target, tmp_path / "s", **s3_settings), "latest")
            assert restored.name == second.name and restored.keys_written_to is None  # the configured key holds them
            assert snapshot(fresh) == before
            assert {"HeadObject", "GetObject"} <= set(s3.operations())

        wrong = settings_for(database_url, target, tmp_path / "s", **{**s3_settings, "secret_access_key": "nope-x"})
        with pytest.raises(BackupError, match="SignatureDoesNotMatch"):
            await operations.create(wrong)
    failed = runs(database_url)[-1]
    assert failed[1] == "failed" and failed[3] == target and "nope-x" not in failed[4]
    assert s3.secret_key not in str(runs(database_url))


async def test_the_operator_is_warned_of_a_missing_or_stale_backup(store: PgStore) -> None:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", backup_max_age_hours=26))
    operator = build_server(deps, transport="memory",
                            principal=Principal("local", "operator", frozenset({"platform:read"}), "stdio"))

    async def warning() -> str:
        async with Client(operator) as c:
            return str(ok(await c.call_tool("whoami", {}))["backups"]["warning"])

    assert (await warning()).startswith("no backup has succeeded yet")
    async with store.pool.connection() as conn:
        await conn.execute("INSERT INTO backup_runs (started_at, finished_at, target, name, status) VALUES "
                           "(now() - interval '3 days', now() - interval '3 days', 'file:///b', 'old', 'ok')")
    assert "older than 26 hours: is the backup CronJob running?" in await warning()
    async with store.pool.connection() as conn:
        await conn.execute("INSERT INTO backup_runs (target, name, status, finished_at) "
                           "VALUES ('file:///b', 'new', 'ok', now())")
    assert await warning() == "None"
