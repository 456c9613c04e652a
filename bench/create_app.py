"""create_app: acceptance latency (p50/p99: validate, authorize, audit, resolve the digest, record, start the
workflow) and orchestration time of a release (call -> serving), printed beside two floors measured in the
same run: applying the same objects with kubectl and waiting for the rollout, and an empty Temporal workflow.

Run: .venv/bin/python bench/create_app.py [--accept N] [--releases K]   (root: needs the testbed's node)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench._harness import TINY, Report, empty_workflow_times, kubectl_times, platform, quiet, services
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from workflows.domain.specs import HealthCheck


async def main(accept: int, releases: int) -> None:
    quiet()
    with services() as (url, address, tb):
        image = "127.0.0.1:5000/bench/web:v1"
        await push_image("127.0.0.1:5000", "bench/web", "v1", busybox_web_files("bench"), cmd=BUSYBOX_HTTPD)
        hc = {"type": "http", "path": "/index.html", "period_seconds": 1}
        # acceptance: no worker polls this platform's task queue, so only the tool's own work is timed
        async with platform(url, address, tb, start_worker=False) as p:
            accept_times = []
            async with p.client() as c:
                for i in range(accept):
                    t = time.perf_counter()
                    r = await c.call_tool("create_app", {"project": "accept", "name": f"a{i}", "port": 8080,
                                                         "source": {"image": image}, "wait_seconds": 0,
                                                         "resources": TINY})
                    accept_times.append(time.perf_counter() - t)
                    assert not r.is_error, r.content
        # orchestration: call -> serving, with the worker running
        async with platform(url, address, tb, progress={"wait_seconds": 180}) as p:
            orchestration = []
            async with p.client() as c:
                for i in range(releases):
                    t = time.perf_counter()
                    r = await c.call_tool("create_app", {"project": f"o{i}", "name": "web", "port": 8080,
                                                         "source": {"image": image}, "resources": TINY,
                                                         "health_check": hc})
                    orchestration.append(time.perf_counter() - t)
                    assert r.structured_content and r.structured_content["phase"] == "succeeded", r.content
            digest = r.structured_content["image_digest"]
            kubectl = await asyncio.to_thread(kubectl_times, tb.kubeconfig, f"127.0.0.1:5000/bench/web@{digest}",
                                              releases, p.tenant, health_check=HealthCheck(**hc))
        empty = await empty_workflow_times(address, max(releases, 20))
    report = Report()
    report.add("create_app acceptance (wait_seconds=0)", accept_times)
    report.add("create_app call -> serving (orchestration)", orchestration)
    report.add("floor: kubectl apply + rollout status", kubectl)
    report.add("floor: empty Temporal workflow", empty)
    report.ratio("call -> serving / (kubectl apply + rollout + empty workflow)",
                 "create_app call -> serving (orchestration)",
                 ("floor: kubectl apply + rollout status", "floor: empty Temporal workflow"))
    report.print("create_app on the testbed")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--accept", type=int, default=30)
    ap.add_argument("--releases", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main(a.accept, a.releases))
