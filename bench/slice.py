"""The seed's slice (push -> build -> deploy -> logs -> rollback -> node failure -> volume) timed step by step
on the two-node testbed, so later work can be compared: build, release Ready, rollback switch, reschedule.
Node death is set beside its floor in the same run: the testbed's node-monitor grace period and the pods'
NoExecute toleration (the time Kubernetes itself waits; docs/decisions/0019-node-failure.md) plus a release
started by hand (kubectl apply + rollout status). Goal (issue 20): serving again under 40 s.

Run: .venv/bin/python bench/slice.py   (root: buildah and kubelet nodes)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp.client import Client

from bench._harness import Report, kubectl_times, platform, quiet, services, timeline
from mcp_server.devenv.edge import TraefikEdge, run_edge
from mcp_server.devenv.git_server import GitHttpsServer, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.slice import Slice, make_slice_repo
from workflows.domain.specs import HealthCheck

TOKEN = "ghs_benchSlice0Token0never0shown0123456"


async def main() -> None:
    quiet()
    with services() as (url, address, tb):
        tls = self_signed_tls(Path(tempfile.mkdtemp(prefix="slice-tls-")))
        repos, work = Path(tempfile.mkdtemp(prefix="slice-repos-")), Path(tempfile.mkdtemp(prefix="slice-work-"))
        build_dir = Path(tempfile.mkdtemp(prefix="slice-builds-"))
        async with platform(url, address, tb, git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
                            build={"dir": build_dir}, releases={"ready_timeout_seconds": 180}) as p:
            edge = TraefikEdge(Path(tempfile.mkdtemp(prefix="slice-edge-")), "apps.localhost")
            ready = asyncio.Event()
            edge_task = asyncio.create_task(run_edge(p.kube, edge, ready))
            await ready.wait()
            server = GitHttpsServer(repos, *tls, TOKEN)
            server.start()
            await push_image("127.0.0.1:5000", f"{p.tenant}/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
            make_slice_repo(repos, work, "slice", f"127.0.0.1:5000/{p.tenant}/base:v1", str(repos / "slice.git"))
            s = Slice(platform=p, testbed=tb, git_url=server.url("slice.git"), work=work, token=TOKEN,
                      edge_http_port=edge.http_port, log=lambda _: None)
            deploys: list[tuple[float, dict[str, Any]]] = []  # (called at, wall clock; what it returned)
            call = s.call

            async def timed_call(c: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
                wall = time.time()
                result = await call(c, tool, args)
                if tool == "deploy":
                    deploys.append((wall, result))
                return result

            s.call = timed_call  # type: ignore[method-assign]
            t = time.monotonic()
            try:
                times = await s.run()
            finally:
                server.stop()
                edge_task.cancel()
                await asyncio.gather(edge_task, return_exceptions=True)
                if s.killed:
                    tb.start_node(s.killed)
            total = time.monotonic() - t
            v2_at, v2 = deploys[0]
            where = await timeline(address, str(v2["workflow_id"]), v2_at)
            image = f"127.0.0.1:5000/{p.tenant}/base:v1"
            started = await asyncio.to_thread(kubectl_times, tb.kubeconfig, image, 3, p.tenant, "slice-floor-",
                                            health_check=HealthCheck(path="/index.html", period_seconds=1))
    report = Report(unit="s")
    for name, seconds in times.items():
        report.add(name, [seconds])
    report.add("total", [total])
    waits = tb.NODE_MONITOR_GRACE_SECONDS + p.settings.cluster.node_failure_seconds
    report.add(f"floor: node grace + toleration ({waits} s, Kubernetes' waits)", [float(waits)])
    report.add("floor: a release started by hand (kubectl apply + rollout status)", started)
    report.ratio("node death -> serving / (Kubernetes' waits + a release's start)", "rescheduled after node death",
                 (f"floor: node grace + toleration ({waits} s, Kubernetes' waits)",
                  "floor: a release started by hand (kubectl apply + rollout status)"))
    report.print("the seed's slice on the two-node testbed")
    node_death = dict(report.rows)["rescheduled after node death"][0]
    print(f"node death -> serving again: {node_death:.1f} s (goal < 40 s: {'met' if node_death < 40 else 'NOT met'})")
    print("the deploy of v2 (the volume app's recreate), from its workflow's history:")
    print("\n".join(where))


if __name__ == "__main__":
    asyncio.run(main())
