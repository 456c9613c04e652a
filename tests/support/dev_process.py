"""`deploy-mcp dev` as a user runs it, for the e2e test of its restart and the first-minute bench: started in
its own state directory, read until its "ready" line (the token and the first call it prints), stopped with
Ctrl-C; and a GET through dev's edge by Host header."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from mcp_server.devenv.dev import EDGE_HTTP_PORT

READY = "ready. Ctrl-C stops everything."


class DevNotReady(Exception):
    """dev exited or stayed silent before its ready line, or printed no token; the message holds its output."""


class DevProcess:
    def __init__(self, state: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG")}
        self.env = env | {"DEPLOY_MCP_STATE_DIR": str(state), "DEPLOY_MCP_HTTP_PORT": str(port)}
        self.port = port
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, timeout: float = 300) -> float:
        """Start dev and read its output until "ready"; returns the seconds that took."""
        self.lines = []
        exe = Path(sys.executable).parent / "deploy-mcp"
        t = time.monotonic()
        self.proc = subprocess.Popen([str(exe), "dev"], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        while time.monotonic() - t < timeout:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if READY in line:
                return time.monotonic() - t
        self.proc.kill()
        self.proc.communicate()
        raise DevNotReady("dev never said ready:\n" + self.output[-3000:])

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def token(self) -> str:
        """The last HTTP token dev printed."""
        found = re.findall(r"Bearer (dmcp_[A-Za-z0-9_-]+)", self.output)
        if not found:
            raise DevNotReady("dev printed no token:\n" + self.output[-3000:])
        return str(found[-1])

    def first_call(self) -> dict[str, Any]:
        """The create_app arguments dev printed for a first call to paste."""
        for line in (s.strip() for s in self.lines):
            if line.startswith('{"project"'):
                args: dict[str, Any] = json.loads(line)
                return args
        raise DevNotReady("dev printed no first call:\n" + self.output[-3000:])

    def stop(self, timeout: float = 120) -> tuple[int, str]:
        """Ctrl-C, as a user stops it; (exit code, what it printed after ready)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            rest, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate()
        return self.proc.returncode, rest


def edge_get(host: str) -> str | None:
    """The body dev's edge returns for `host` with 200, else None."""
    try:
        r = httpx.get(f"http://127.0.0.1:{EDGE_HTTP_PORT}/", headers={"Host": host}, timeout=3, trust_env=False)
    except httpx.HTTPError:
        return None
    return r.text.strip() if r.status_code == 200 else None
