"""The harness's own services: each starts for real and stops by PID, and each fails loudly and quickly,
naming the fix, when its binary is missing or it dies while starting."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client as TemporalClient

from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed
from mcp_server.devenv.processes import ManagedProcess, ServiceError, process_starttime
from mcp_server.store import migrate, migration_files


def test_missing_binary_fails_at_once(tmp_path: Path) -> None:
    p = ManagedProcess("thing", ["/nonexistent/bin/thing"], tmp_path, install_hint="apt install thing")
    t = time.monotonic()
    with pytest.raises(ServiceError, match=r"thing: executable '/nonexistent/bin/thing' not found\. apt install"):
        p.start()
    assert time.monotonic() - t < 1


def test_process_dying_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    p = ManagedProcess("dies", ["sh", "-c", "echo boom-reason; exit 3"], tmp_path)
    p.start()
    with pytest.raises(ServiceError, match=r"(?s)exited before it was ready.*boom-reason"):
        p.wait_ready(lambda: False, timeout=30)


def test_process_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    p = ManagedProcess("sleeper", ["sleep", "60"], tmp_path)
    p.start()
    pid = p.running_pid()
    assert pid is not None
    with pytest.raises(ServiceError, match="not ready after 1 s; stopped it"):
        p.wait_ready(lambda: False, timeout=1)
    assert process_starttime(pid) is None and not p.pid_file.exists()


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    p = ManagedProcess("other", ["true"], tmp_path)
    tmp_path.mkdir(exist_ok=True)
    p.pid_file.write_text(f"{os.getpid()} 1\n")  # our own PID, with a start time that is not ours
    assert p.running_pid() is None
    p.stop()  # must not signal the test process
    assert not p.pid_file.exists()


def test_postgres_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="postgres: no postgres binary in /nonexistent"):
        EmbeddedPostgres(tmp_path / "pg", bin_dir=Path("/nonexistent")).start()


def test_temporal_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="temporal: executable '/nonexistent/temporal' not found"):
        TemporalDevServer(tmp_path, cli=Path("/nonexistent/temporal")).start()


def test_testbed_without_binaries(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"testbed: binaries missing .* run `deploy-mcp testbed build`"):
        Testbed(cache_dir=tmp_path / "empty").up(node=False)


def test_embedded_postgres_starts_migrates_and_stops(workdir: Path) -> None:
    pg = EmbeddedPostgres(workdir / "pg-lifecycle")
    url = pg.start()
    try:
        names = [name for _, name, _ in migration_files()]
        assert names[:3] == ["0001_schema_v1.sql", "0002_release_seq.sql", "0003_volume_snapshots.sql"]
        assert asyncio.run(migrate(url)) == names  # all, in order
        assert asyncio.run(migrate(url)) == []  # recorded: not applied twice
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
            assert rows == [(int(n.split("_", 1)[0]), n) for n in names]  # each under its file's number
        pid = pg.proc.running_pid() if pg.proc else None
        assert pid is not None
    finally:
        pg.stop()
    assert process_starttime(pid) is None


async def test_temporal_dev_server_serves(temporal_address: str) -> None:
    client = await TemporalClient.connect(temporal_address)
    info = await client.service_client.workflow_service.get_system_info(
        __import__("temporalio.api.workflowservice.v1", fromlist=["GetSystemInfoRequest"]).GetSystemInfoRequest()
    )
    assert info.server_version
