"""The Postgres image's recipe (image/postgres, mcp_server/devenv/postgres_image.py) as the renderer expects it:
uid 999 fixed before Debian's package picks one, no default cluster, PGDATA and the entrypoint the StatefulSet
names; and the entrypoint itself, run against stand-in initdb/pg_ctl/psql/postgres that record what they are
given: it initialises once, creates the role and database with the password passed through the environment
only (never an argument), listens on the network only once initialised, and passes its arguments to postgres."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mcp_server.devenv.buildah import ImageBuildError
from mcp_server.devenv.platform_image import REPO_ROOT
from mcp_server.devenv.postgres_image import CONTAINERFILE, CONTEXT, MAJORS, bud_argv, build_args, inputs_hash
from mcp_server.settings import DatabasesSettings
from workflows.domain.database_spec import PGDATA, POSTGRES_UID
from workflows.render.database import ENTRYPOINT

ENTRYPOINT_SCRIPT = REPO_ROOT / CONTEXT / "entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / CONTAINERFILE).read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [(w.upper(), r.strip()) for w, _, r in (ln.strip().partition(" ") for ln in joined.splitlines()
                                                   if ln.strip())]


def test_the_image_builds_on_the_self_built_base_and_runs_as_the_renderers_uid() -> None:
    ins = instructions()
    assert ins[0] == ("ARG", "BASE=localhost/deploy-mcp-base:bookworm")
    assert [a for w, a in ins if w == "FROM"] == ["${BASE}"]
    d = dict(ins)
    assert d["USER"] == f"{POSTGRES_UID}:{POSTGRES_UID}"
    assert json.loads(d["ENTRYPOINT"]) == [ENTRYPOINT]
    assert d["COPY"] == f"entrypoint.sh /usr/local/bin/{ENTRYPOINT}"
    assert f"PGDATA={PGDATA}" in d["ENV"] and "PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:" in d["ENV"]


def test_the_account_and_the_no_default_cluster_come_before_the_server_package() -> None:
    run = dict(instructions())["RUN"]
    order = [run.index(s) for s in (f"useradd --system --uid {POSTGRES_UID} --gid {POSTGRES_UID}",
                                    "postgresql-common", "create_main_cluster = false", '"postgresql-${PG_MAJOR}"',
                                    "rm -rf /var/lib/apt/lists/*")]
    assert order == sorted(order)
    assert "--no-install-recommends" in run and f'test "$(id -u postgres)" = {POSTGRES_UID}' in run


def test_only_packaged_majors_build_and_the_default_is_one() -> None:
    assert DatabasesSettings().default_version in MAJORS
    assert build_args("b", 15) == ["--build-arg", "BASE=b", "--build-arg", "PG_MAJOR=15"]
    with pytest.raises(ImageBuildError, match="not packaged for bookworm"):
        build_args("b", 16)


def test_the_build_context_is_the_image_directory_and_its_hash_follows_the_files(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / CONTEXT, tmp_path / CONTEXT)
    args = build_args("b", 15)
    before = inputs_hash(tmp_path, args)
    assert before == inputs_hash(tmp_path, args) and before != inputs_hash(tmp_path, build_args("c", 15))
    (tmp_path / CONTEXT / "entrypoint.sh").write_text("#!/bin/sh\n")
    assert inputs_hash(tmp_path, args) != before
    argv = bud_argv(tmp_path, args, before, ["x:1"])
    assert argv[-1] == str(tmp_path / CONTEXT) and argv[argv.index("-f") + 1] == str(tmp_path / CONTAINERFILE)


# --- The entrypoint, against recording stand-ins ---------------------------------------------------------------

STAND_IN = """#!/bin/sh
# records its name, arguments and (psql) stdin as one JSON line
name=$(basename "$0")
stdin=""
if [ "$name" = psql ]; then stdin=$(cat); fi
python3 - "$name" "$stdin" "$@" >> "$LOG" <<'PY'
import json, sys
print(json.dumps({"cmd": sys.argv[1], "stdin": sys.argv[2], "args": sys.argv[3:],
                  "password_in_env": "POSTGRES_PASSWORD" in __import__("os").environ}))
PY
if [ "$name" = initdb ]; then echo 15 > "$PGDATA/PG_VERSION"; fi
"""
PASSWORD = "pw-not-on-any-command-line"


def run_entrypoint(tmp_path: Path, *args: str) -> list[dict[str, object]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("initdb", "pg_ctl", "psql", "postgres"):
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log), "PGDATA": str(tmp_path / "data" / "pgdata"),
           "POSTGRES_USER": "orders", "POSTGRES_DB": "orders", "POSTGRES_PASSWORD": PASSWORD}
    subprocess.run(["sh", str(ENTRYPOINT_SCRIPT), *args], env=env, check=True, timeout=30)
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_first_start_initialises_then_serves(tmp_path: Path) -> None:
    calls = run_entrypoint(tmp_path, "-c", "shared_buffers=64MB")
    assert [c["cmd"] for c in calls] == ["initdb", "pg_ctl", "psql", "pg_ctl", "postgres"]
    initdb, start, psql, stop, server = calls
    assert "--auth-local=peer" in initdb["args"] and "--auth-host=scram-sha-256" in initdb["args"]  # type: ignore[operator]
    assert "-c listen_addresses=''" in start["args"]  # type: ignore[operator]
    assert "CREATE ROLE :\"role\" LOGIN PASSWORD :'password';" in str(psql["stdin"])
    assert "\\getenv password POSTGRES_PASSWORD" in str(psql["stdin"]) and psql["password_in_env"] is True
    assert "--mode=fast" in stop["args"]  # type: ignore[operator]
    assert server["args"] == ["-D", str(tmp_path / "data" / "pgdata"), "-c", "listen_addresses=*",
                              "-c", "shared_buffers=64MB"]
    assert server["password_in_env"] is False  # unset before the server starts: not in /proc/<pid>/environ
    assert all(PASSWORD not in json.dumps(c["args"]) for c in calls)
    hba = (tmp_path / "data" / "pgdata" / "pg_hba.conf").read_text()
    assert "local   all   postgres               peer" in hba and "trust" not in hba
    assert oct((tmp_path / "data" / "pgdata").stat().st_mode & 0o777) == "0o700"


def test_a_later_start_only_serves(tmp_path: Path) -> None:
    run_entrypoint(tmp_path)
    assert [c["cmd"] for c in run_entrypoint(tmp_path)] == ["postgres"]


def test_a_half_initialised_directory_is_made_again(tmp_path: Path) -> None:
    data = tmp_path / "data" / "pgdata"
    data.mkdir(parents=True)
    (data / "leftover").write_text("from a killed initdb")
    assert next(c["cmd"] for c in run_entrypoint(tmp_path)) == "initdb"
    assert not (data / "leftover").exists()
