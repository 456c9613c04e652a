"""A real Prometheus (Debian's `prometheus` package) for a test: started by PID on loopback with the test's
scrape targets, scraping every second, queried over its HTTP API (`/api/v1/query`), stopped at the end."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mcp_server.devenv.processes import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now (`data.result`)."""
        async with httpx.AsyncClient(timeout=10) as h:
            r = await h.get(f"{self.url}/api/v1/query", params={"query": promql})
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (promql, r.text)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def value(self, promql: str) -> float | None:
        """The single value of `promql`, None when it selects nothing."""
        result = await self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    async def wait_for(self, promql: str, want: float, timeout: float = 30) -> float:
        """Poll until `promql` is `want` (the next scrapes bring it), else fail showing the last value."""
        deadline = time.monotonic() + timeout
        got: float | None = None
        while time.monotonic() < deadline:
            got = await self.value(promql)
            if got == want:
                return got
            await asyncio.sleep(0.5)
        raise AssertionError(f"{promql} = {got} after {timeout:g} s, want {want}")

    async def targets_up(self, jobs: set[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        up: dict[str, float] = {}
        while time.monotonic() < deadline:
            up = {r["metric"]["job"]: float(r["value"][1]) for r in await self.query("up")}
            if all(up.get(j) == 1 for j in jobs):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"scrape targets not up after {timeout:g} s: {up}")


@contextmanager
def prometheus(workdir: Path, targets: Mapping[str, str]) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (job name -> host:port, path /metrics) every second."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("no prometheus binary: `apt-get install prometheus` (Debian bookworm ships 2.42)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                 for job, target in targets.items()]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (workdir / "prometheus.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus not ready in 30 s"
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
