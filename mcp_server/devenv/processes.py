"""Child processes started and stopped by PID: the embedded services of `deploy-mcp dev` and the test harness.

A PID file holds "PID STARTTIME" (the kernel's start time in clock ticks), so a PID that was recycled by
another process is never signalled. Every start fails loudly, with the log's tail, instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not start or stop; the message names the service and what to do."""


# Below Linux's default ephemeral range (32768-60999): a port the kernel hands out for port 0 is also what it
# hands every outgoing connection, so between our probe and the service's own bind a client socket could take it
# ("address already in use" at start). A random port below the range is only ever taken by another bind.
_FREE_PORTS = range(20000, 32768)


def free_port(host: str = "127.0.0.1") -> int:
    for _ in range(200):
        port = random.choice(_FREE_PORTS)  # noqa: S311 (not a secret)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def process_starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ManagedProcess:
    """One long-running child process with a PID file and a log file."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    install_hint: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def start(self) -> None:
        exe = self.argv[0]
        if not (Path(exe).is_file() and os.access(exe, os.X_OK)) and shutil.which(exe) is None:
            raise ServiceError(f"{self.name}: executable {exe!r} not found. {self.install_hint}".strip())
        if self.running_pid() is not None:
            raise ServiceError(f"{self.name}: already running (PID file {self.pid_file}); stop it first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        try:
            self._proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not our children: we stop them in order
            )
        finally:
            log.close()
        start = process_starttime(self._proc.pid) or ""
        self.pid_file.write_text(f"{self._proc.pid} {start}\n")

    def running_pid(self) -> int | None:
        try:
            pid_s, _, start = self.pid_file.read_text().strip().partition(" ")
            pid = int(pid_s)
        except (OSError, ValueError):
            return None
        if self._proc is not None and self._proc.pid == pid and self._proc.poll() is not None:
            return None
        return pid if process_starttime(pid) == start and start else None

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                self._reap()
                raise ServiceError(
                    f"{self.name}: exited before it was {what}; log {self.log_file}:\n{log_tail(self.log_file)}"
                )
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(
            f"{self.name}: not {what} after {timeout:.0f} s; stopped it. Log {self.log_file}:\n"
            f"{log_tail(self.log_file)}"
        )

    def _reap(self) -> None:
        # running_pid() sees a zombie as gone before poll() has collected it: wait for our own
        # child here, or its Popen object warns that it is still running when collected.
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.running_pid()
        if pid is not None:
            start = process_starttime(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, self.stop_signal)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_starttime(pid) == start:
                if self._proc is not None and self._proc.pid == pid:
                    self._proc.poll()  # reap our own child so it does not linger as a zombie
                time.sleep(0.05)
            if process_starttime(pid) == start:
                os.kill(pid, signal.SIGKILL)
        self._reap()
