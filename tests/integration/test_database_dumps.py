"""`deploy-mcp db-dump` (mcp_server/backup/databases.py) against a real (embedded) Postgres standing in for an
app's database: the dump is sealed with the backup key (no clear rows at the target), kept below the database's
own prefix, restorable with pg_restore (rows back after a dropped table), recorded with its size; retention by
count keeps the newest; a dump that cannot reach its database is recorded failed, and shows in `databases`. The
same through an s3:// target (the fake S3), as the dump and restore jobs in a cluster use it."""

from __future__ import annotations

import asyncio
import base64
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from cryptography.fernet import Fernet

from mcp_server.backup import databases as dumps
from mcp_server.backup import postgres
from mcp_server.backup.archive import read_archive
from mcp_server.backup.seal import BackupError, parse_keys
from mcp_server.backup.targets import NAME, StoredArchive, archive_name
from mcp_server.cli import main
from mcp_server.settings import Settings, load_settings
from mcp_server.store import PgStore
from tests.fakes.fake_s3 import fake_s3
from workflows.domain.database_spec import database_backup_prefix, dump_name
from workflows.domain.secretbox import SecretBox

KEY = base64.b64encode(b"D" * 32).decode()


@contextmanager
def app_database(server_url: str) -> Iterator[str]:
    """A database with a role of its own (as the platform's Postgres has), holding rows."""
    name = f"a_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'pw-{name}'")
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    parts = urlsplit(server_url)
    url = f"postgresql://{name}:pw-{name}@{parts.hostname}:{parts.port}/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders VALUES (1, 'secret-sauce'), (2, 'more')")
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def settings_for(store_url: str, target: str, state: Path) -> Settings:
    return load_settings(state_dir=state, database={"url": store_url}, backup={"target": target, "key": KEY})


async def record(store_url: str) -> uuid.UUID:
    store = await PgStore.open(store_url)
    try:
        d, _ = await store.create_database(
            "acme", f"p{uuid.uuid4().hex[:6]}", "orders", engine="statefulset", version=15, size_gib=1,
            class_="fast", resources={}, ciphertext=SecretBox(Fernet.generate_key().decode()).seal({"password": "x"}),
            created_by="alice")
        return d.id
    finally:
        await store.close()


def test_dump_names_are_the_archive_names_the_targets_list() -> None:
    at = datetime(2026, 12, 2, 4, 30, 1, 123000, tzinfo=UTC)
    assert dump_name(at) == archive_name(at) and NAME.match(dump_name(at))


def test_retention_drops_beyond_the_count_and_the_age_but_never_the_newest() -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    stored = [StoredArchive(dump_name(now - timedelta(days=d)), 1, now - timedelta(days=d)) for d in (40, 3, 2, 1)]
    newest = stored[-1].name
    assert dumps.expired(stored, 3, timedelta(days=30), now, newest) == [stored[0].name]
    assert dumps.expired(stored, 2, timedelta(days=30), now, newest) == sorted([stored[0].name, stored[1].name])
    assert dumps.expired(stored[-1:], 1, timedelta(days=0), now, newest) == []  # the latest stays, however old


async def test_a_dump_is_sealed_recorded_pruned_and_restores(database_url: str, pg_server_url: str,
                                                            tmp_path: Path) -> None:
    db_id = await record(database_url)
    target = tmp_path / "backups"
    target.mkdir()
    settings = settings_for(database_url, f"file://{target}", tmp_path / "s")
    with app_database(pg_server_url) as url:
        made = []
        for _ in range(3):
            made.append(await dumps.dump(settings, db_id, url, "manual", keep=2, max_age_days=30))
            await asyncio.sleep(0.01)  # names carry milliseconds
        store = await PgStore.open(database_url)
        try:
            d = await store.get_database_by_id(db_id)
            assert d is not None
            runs = await store.list_database_backups(db_id)
        finally:
            await store.close()
        where = target / "databases" / "acme" / d.project / "orders"
        kept = sorted(p.name for p in where.iterdir())
        assert kept == sorted(m.name for m in made[1:]) and made[2].deleted == [made[0].name]
        assert [r.status for r in runs] == ["ok"] * 3 and all(r.size_bytes and r.size_bytes > 0 for r in runs)
        archive = (where / made[2].name).read_bytes()
        assert b"secret-sauce" not in archive and b"PGDMP" not in archive  # sealed: no clear rows, no clear dump

        # a dropped table, then the dump restored into the same database: the rows are back
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE orders")
        with (where / made[2].name).open("rb") as src, tempfile.TemporaryFile() as plain:
            read_archive(parse_keys(KEY), src, plain)
            plain.seek(0)
            with tempfile.TemporaryFile() as err, postgres.start_restore(url, None, err) as proc:
                assert proc.stdin is not None
                proc.stdin.write(plain.read())
                proc.stdin.close()
                assert proc.wait() == 0, postgres.tail(err)
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT id, item FROM orders ORDER BY id").fetchall()
        assert rows == [(1, "secret-sauce"), (2, "more")]


async def test_a_dump_that_cannot_connect_is_recorded_failed(database_url: str, pg_server_url: str,
                                                            tmp_path: Path) -> None:
    db_id = await record(database_url)
    settings = settings_for(database_url, f"file://{tmp_path}", tmp_path / "s")
    parts = urlsplit(pg_server_url)
    wrong = f"postgresql://nobody:wrong@{parts.hostname}:{parts.port}/nothing"
    with pytest.raises(BackupError, match="pg_dump failed"):
        await dumps.dump(settings, db_id, wrong, "scheduled", keep=2, max_age_days=30)
    store = await PgStore.open(database_url)
    try:
        (run,) = await store.list_database_backups(db_id)
        d = await store.get_database_by_id(db_id)
    finally:
        await store.close()
    assert run.status == "failed" and run.kind == "scheduled" and "wrong" not in (run.error or "")
    assert d is not None and d.last_backup is not None and d.last_backup["status"] == "failed"


def test_the_command_needs_the_credentials_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    code = main(["db-dump", "--database-id", str(uuid.uuid4()), "--host", "h", "--dbname", "d"])
    assert code == 1


async def test_db_restore_puts_back_dropped_rows_and_fills_a_new_database(database_url: str, pg_server_url: str,
                                                                         tmp_path: Path) -> None:
    db_id = await record(database_url)
    target = tmp_path / "backups"
    target.mkdir()
    settings = settings_for(database_url, f"file://{target}", tmp_path / "s")
    with app_database(pg_server_url) as url:
        made = await dumps.dump(settings, db_id, url, "manual", keep=5, max_age_days=30)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM orders WHERE id = 1")
            conn.execute("CREATE TABLE extra (x int)")  # not in the dump: --clean leaves it
        restored = await dumps.restore(settings, db_id, url, made.name)
        assert restored.name == made.name
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT id FROM orders ORDER BY id").fetchall() == [(1,), (2,)]
        new_id = await record(database_url)
        with app_database(pg_server_url) as other:
            with psycopg.connect(other, autocommit=True) as conn:
                conn.execute("DROP TABLE orders")
            await dumps.restore(settings, new_id, other, made.name, source_database_id=db_id)
            with psycopg.connect(other) as conn:
                assert conn.execute("SELECT item FROM orders ORDER BY id").fetchall() == [("secret-sauce",), ("more",)]
        with pytest.raises(BackupError):
            await dumps.restore(settings, db_id, url, "deploy-mcp-20200101T000000.000Z.dmcpbak")


async def test_a_dump_to_an_s3_target_restores_dropped_rows(database_url: str, pg_server_url: str,
                                                          tmp_path: Path) -> None:
    db_id = await record(database_url)
    with fake_s3("dumps") as s3, app_database(pg_server_url) as url:
        settings = load_settings(state_dir=tmp_path / "s", database={"url": database_url}, backup={
            "target": "s3://dumps/cluster", "key": KEY, "endpoint_url": s3.endpoint, "region": s3.region,
            "access_key_id": s3.access_key, "secret_access_key": s3.secret_key})
        made = await dumps.dump(settings, db_id, url, "manual", keep=5, max_age_days=30)
        store = await PgStore.open(database_url)
        try:
            d = await store.get_database_by_id(db_id)
        finally:
            await store.close()
        assert d is not None
        key = f"cluster/{database_backup_prefix('acme', d.project, 'orders')}/{made.name}"
        stored = s3.buckets["dumps"][key].data
        assert len(stored) == made.size > 0 and b"secret-sauce" not in stored
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE orders")
        await dumps.restore(settings, db_id, url, made.name)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT item FROM orders ORDER BY id").fetchall() == [("secret-sauce",), ("more",)]
        assert {"PutObject", "GetObject"} <= set(s3.operations())
