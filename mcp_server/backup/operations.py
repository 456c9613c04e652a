"""The backup commands: create (dump -> seal -> target -> retention), restore (verify all -> empty target ->
pg_restore -> migrate -> keys), verify and list; every create and restore recorded in `backup_runs`.

The heavy parts (pg_dump, pg_restore, sealing, uploads) are blocking and run in a thread; the records are
written through the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import psycopg

from mcp_server.backup import postgres
from mcp_server.backup.archive import DUMP_PIECE, ArchiveWriter, Manifest, Opened, read_archive
from mcp_server.backup.seal import BackupError, BackupKey, parse_keys
from mcp_server.backup.targets import FileTarget, S3Target, StoredArchive, archive_name, open_target, split_source
from mcp_server.settings import Settings
from mcp_server.startup import load_secretbox, require_database_url
from mcp_server.store import PgStore, migrate, migration_files
from tools.records import BackupRun
from workflows.domain.secretbox import SecretBoxError, split_keys

log = logging.getLogger(__name__)

Target = FileTarget | S3Target


def platform_version() -> str:
    try:
        return package_version("deploy-mcp")
    except PackageNotFoundError:
        return "unknown"


def backup_keys(settings: Settings) -> list[BackupKey]:
    try:
        text = settings.backup.key_text()
    except OSError as e:
        raise BackupError(f"cannot read backup.key_file: {e.strerror}") from None
    return parse_keys(text)


def secrets_keys(settings: Settings) -> list[str]:
    """The secrets keys the archive carries: the configured ones, or dev's generated key file. Never a key
    generated now: a backup must carry the key its data was encrypted with."""
    if settings.secrets_key is None and not (settings.state_dir / "secrets.key").exists():
        raise BackupError("no secrets key to back up: set secrets_key (DEPLOY_MCP_SECRETS_KEY) as the server and "
                          "worker have it, else the restored secrets cannot be decrypted")
    try:
        return load_secretbox(settings).keys
    except SecretBoxError as e:
        raise BackupError(str(e)) from e


def configured_target(settings: Settings, url: str | None = None) -> Target:
    url = url or settings.backup.target
    if not url:
        raise BackupError("no backup target: set backup.target (DEPLOY_MCP_BACKUP__TARGET) to file:///dir or "
                          "s3://bucket/prefix, or pass --target")
    return open_target(url, settings.backup)


@dataclass(frozen=True)
class Created:
    target: str
    name: str
    size: int
    manifest: Manifest
    deleted: list[str]


def _dump_and_seal(url: str, pg_bin: Path | None, key: BackupKey, carried: list[str], out: Path,
                   meta: dict[str, str | int]) -> tuple[int, Manifest]:
    dump_tool = postgres.tool("pg_dump", pg_bin)
    with tempfile.TemporaryFile() as stderr, out.open("wb") as f, postgres.start_dump(url, pg_bin, stderr) as proc:
        assert proc.stdout is not None
        try:
            writer = ArchiveWriter(key, f)
            writer.add_keys(carried)
            while chunk := proc.stdout.read(DUMP_PIECE):
                writer.add_dump(chunk)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
        if code != 0:
            raise BackupError(f"pg_dump failed (exit {code}): {postgres.tail(stderr)}")
        manifest = Manifest(**meta, pg_dump_version=postgres.version(dump_tool), dump_sha256=writer.dump_sha256,
                            dump_size=writer.dump_size, secrets_key_count=len(carried))
        size = writer.finish(manifest)
    return size, manifest


def prune(target: Target, keep: int, newest: str) -> list[str]:
    """Delete the oldest archives beyond `keep` (never `newest`, the one just written)."""
    names = [a.name for a in target.list()]
    doomed = [n for n in names[: max(len(names) - keep, 0)] if n != newest]
    for name in doomed:
        target.delete(name)
    return doomed


async def _reach(url: str) -> tuple[int, str]:
    try:
        return await postgres.describe(url)
    except psycopg.OperationalError as e:
        raise BackupError(f"the database cannot be reached: {e}".strip()) from e


def _label(url: str | None) -> str:
    """A target URL as recorded: never credentials (the settings refuse them; this is the belt to those braces)."""
    if not url:
        return "(no target)"
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"


async def create(settings: Settings, target_url: str | None = None, keep: int | None = None) -> Created:
    """One backup run, recorded in `backup_runs` whatever fails once the database answers (a missing key or
    target included: a misconfigured schedule must show, not fail quietly). Raises BackupError."""
    url = require_database_url(settings)
    schema_version, server_version = await _reach(url)
    started = datetime.now(UTC)
    name = archive_name(started)
    keep = keep if keep is not None else settings.backup.keep
    store = await PgStore.open(url, min_size=1, max_size=2)
    try:
        run_id = await store.start_backup_run(_label(target_url or settings.backup.target), name)
        try:
            keys = backup_keys(settings)
            keys_in_archive = secrets_keys(settings)
            target = configured_target(settings, target_url)
            staged = target.staging(name)
            meta: dict[str, str | int] = {
                "created_at": started.isoformat(), "platform_version": platform_version(),
                "schema_version": schema_version, "database": postgres.database_name(url),
                "server_version": server_version}
            try:
                size, manifest = await asyncio.to_thread(
                    _dump_and_seal, url, settings.backup.pg_bin_dir, keys[0], keys_in_archive, staged, meta)
                await asyncio.to_thread(target.commit, name, staged)
            except BaseException:
                target.discard(staged)
                raise
        except Exception as e:
            error = str(e) if isinstance(e, BackupError) else f"{type(e).__name__}: {e}"
            await store.finish_backup_run(run_id, ok=False, error=error)
            raise BackupError(error) from e
        await store.finish_backup_run(run_id, ok=True, size_bytes=size)
        try:
            deleted = await asyncio.to_thread(prune, target, keep, name) if keep else []
        except BackupError as e:
            # the backup is good; the target fills up unless someone looks, so the run says so and exits 1
            await store.finish_backup_run(run_id, ok=True, size_bytes=size, error=f"retention failed: {e}")
            raise BackupError(f"backup {name} is stored, but retention failed: {e}") from e
        return Created(target.display, name, size, manifest, deleted)
    finally:
        await store.close()


def _resolve(settings: Settings, source: str) -> tuple[Target, str]:
    base, name = split_source(source)
    target = configured_target(settings, base or None)
    if name is None:
        stored = target.list()
        if not stored:
            raise BackupError(f"no backups in {target.display}")
        name = stored[-1].name
    return target, name


def _verify_file(keys: list[BackupKey], path: Path) -> tuple[Opened, int]:
    with path.open("rb") as f:
        return read_archive(keys, f), path.stat().st_size


async def verify(settings: Settings, source: str) -> tuple[str, Opened, int]:
    """Read a whole archive and check it (every chunk, the dump's digest and size); touches no database."""
    keys = backup_keys(settings)
    target, name = _resolve(settings, source)
    with target.local_copy(name) as path:
        opened, size = await asyncio.to_thread(_verify_file, keys, path)
    return name, opened, size


def _restore_into(keys: list[BackupKey], path: Path, url: str, pg_bin: Path | None) -> None:
    with tempfile.TemporaryFile() as stderr, path.open("rb") as f, \
            postgres.start_restore(url, pg_bin, stderr) as proc:
        assert proc.stdin is not None
        try:
            read_archive(keys, f, sink=proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped reading: its exit code and stderr say why
        except BaseException:
            proc.kill()  # before its one transaction commits: the target stays as it was
            raise
        code = proc.wait()
        if code != 0:
            raise BackupError(f"pg_restore failed (exit {code}); its one transaction was rolled back: "
                              f"{postgres.tail(stderr)}")


def _keys_destination(settings: Settings, opened: Opened, keys_file: Path | None, force: bool) -> Path | None:
    """Where the archive's secrets keys are written after the restore (None: the configured key holds them).
    Decided before the target is touched, so a restore never ends with data nobody can decrypt."""
    if keys_file is not None:
        if keys_file.exists() and not force:
            raise BackupError(f"{keys_file} exists; choose another --secrets-key-file or pass --force")
        return keys_file
    if settings.secrets_key is not None:
        configured = split_keys(settings.secrets_key.get_secret_value())
        missing = [k for k in opened.secrets_keys if k not in configured]
        if missing:
            raise BackupError(
                f"the backup's secrets are encrypted under {len(missing)} key(s) the configured secrets_key does "
                "not hold: pass --secrets-key-file PATH to write the backup's keys there, then set "
                "DEPLOY_MCP_SECRETS_KEY from that file")
        return None
    path = settings.state_dir / "secrets.key"
    if path.exists() and split_keys(path.read_text()) != opened.secrets_keys and not force:
        raise BackupError(f"{path} holds other secrets keys than the backup's; pass --secrets-key-file PATH, "
                          "or --force to replace it")
    return path


def _write_keys(path: Path, keys: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(",".join(keys) + "\n")


@dataclass(frozen=True)
class Restored:
    source: str
    name: str
    manifest: Manifest
    keys_written_to: Path | None
    migrated: list[str]


async def restore(settings: Settings, source: str, force: bool = False,
                  secrets_key_file: Path | None = None) -> Restored:
    """Verify the whole archive, then restore it into the configured (empty, or with `force` emptied)
    database, migrate it to this version's schema and put the secrets keys where the platform reads them."""
    url = require_database_url(settings)
    keys = backup_keys(settings)
    target, name = _resolve(settings, source)
    with target.local_copy(name) as path:
        opened, size = await asyncio.to_thread(_verify_file, keys, path)
        newest = max(v for v, _, _ in migration_files())
        if opened.manifest.schema_version > newest:
            raise BackupError(f"the backup has schema {opened.manifest.schema_version}, newer than this "
                              f"deploy-mcp's {newest} ({platform_version()}): restore with deploy-mcp "
                              f"{opened.manifest.platform_version} or newer")
        keys_to = _keys_destination(settings, opened, secrets_key_file, force)
        try:
            relations = await postgres.relation_count(url)
        except psycopg.OperationalError as e:
            raise BackupError(f"the database cannot be reached: {e}".strip()) from e
        if relations and not force:
            raise BackupError(f"the target database {postgres.database_name(url)!r} is not empty ({relations} "
                              "relations): restore into a new, empty database, or pass --force to replace "
                              "everything in it")
        if relations:
            log.warning("restore --force: dropping everything in database %s", postgres.database_name(url))
            await postgres.empty_public_schema(url)
        await asyncio.to_thread(_restore_into, keys, path, url, settings.backup.pg_bin_dir)
    migrated = await migrate(url)
    store = await PgStore.open(url, min_size=1, max_size=1)
    try:
        await store.record_restore(target.display, name, size)
    finally:
        await store.close()
    if keys_to is not None:
        _write_keys(keys_to, opened.secrets_keys)
    return Restored(target.display, name, opened.manifest, keys_to, migrated)


async def listing(settings: Settings, target_url: str | None = None,
                  limit: int = 20) -> tuple[str, list[StoredArchive] | str, list[BackupRun] | str]:
    """(target, its archives or why they cannot be listed, the recorded runs or why they cannot be read)."""
    target = configured_target(settings, target_url)
    try:
        stored: list[StoredArchive] | str = await asyncio.to_thread(target.list)
    except BackupError as e:
        stored = str(e)
    runs: list[BackupRun] | str
    try:
        await _reach(require_database_url(settings))
        store = await PgStore.open(require_database_url(settings), min_size=1, max_size=1)
        try:
            runs = await store.list_backup_runs(limit)
        finally:
            await store.close()
    except BackupError as e:
        runs = str(e)
    return target.display, stored, runs
