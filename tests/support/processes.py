"""`deploy-mcp` commands (and the tests' own worker script) as child processes on the suite's Postgres and
Temporal: the environment they read their settings from, starting them, waiting for their health endpoint,
and their exit code. Plain `subprocess` rather than `ManagedProcess`: these tests assert how a process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

DEPLOY_MCP = str(Path(sys.executable).parent / "deploy-mcp")


def platform_env(database_url: str, temporal_address: str, task_queue: str, state_dir: Path,
                 **settings: str) -> dict[str, str]:
    """The environment of a platform process: no kubeconfig (no cluster here), a fixed secrets key (every
    replica must decrypt what another wrote), `settings` as DEPLOY_MCP_<NAME> on top."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith("DEPLOY_MCP_")}
    env |= {
        "DATABASE_URL": database_url,
        "DEPLOY_MCP_TEMPORAL__ADDRESS": temporal_address,
        "DEPLOY_MCP_TEMPORAL__TASK_QUEUE": task_queue,
        "DEPLOY_MCP_STATE_DIR": str(state_dir),
        "DEPLOY_MCP_SECRETS_KEY": "qW0vQhRzUm8xZkq6C2dQZ4Vv8bWmKq1uX7eV5m2rT0o=",
    }
    env |= {f"DEPLOY_MCP_{k.upper()}": v for k, v in settings.items()}
    return env


@contextmanager
def child(argv: Sequence[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The process for the block; killed at exit if it still runs (a failed test must not leak it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    """Until `url` answers 200; fails with the log's tail when the process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited {proc.returncode} before {url} answered:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout:g} s:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
