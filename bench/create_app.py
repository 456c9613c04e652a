"""create_app: acceptance latency (p50/p99: validate, authorize, audit, resolve the digest, record, start the
workflow) and orchestration time of a release (call -> serving), printed beside two floors measured in the
same run: applying the same objects with kubectl and waiting for the rollout, and an empty Temporal workflow.

Run: .venv/bin/python bench/create_app.py [--accept N] [--releases K]   (root: needs the testbed's node)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench._harness import pct, platform, quiet, services
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from workflows.domain.names import namespace_name
from workflows.domain.specs import AppConfig, ClusterCaps, Guardrails, HealthCheck, ReleaseSpec, Resources
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_secret

TINY = {"cpu_millicores": 10, "cpu_limit_millicores": 100, "memory_mib": 32}


@workflow.defn(name="bench-empty", sandboxed=False)  # nothing to guard; the sandbox would re-import this script
class EmptyWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


async def empty_workflow_times(address: str, runs: int) -> list[float]:
    client = await Client.connect(address)
    queue = f"bench-empty-{uuid.uuid4().hex[:6]}"
    times = []
    async with Worker(client, task_queue=queue, workflows=[EmptyWorkflow]):
        for i in range(runs):
            t = time.perf_counter()
            await client.execute_workflow(EmptyWorkflow.run, i, id=f"bench-empty-{uuid.uuid4()}", task_queue=queue)
            times.append(time.perf_counter() - t)
    return times


def kubectl_times(kubeconfig: Path, image: str, runs: int, tenant: str) -> list[float]:
    """The floor for orchestration: the same objects, `kubectl apply` + `kubectl rollout status`."""
    kubectl = [str(kubeconfig.parent.parent / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}"]
    caps = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
    times = []
    for i in range(runs):
        project = f"k{i}"
        ns = namespace_name(tenant, project)
        config = AppConfig(port=8080, resources=Resources(**TINY),
                           health_check=HealthCheck(path="/index.html", period_seconds=1), shutdown_grace_seconds=1)
        spec = ReleaseSpec(tenant=tenant, project=project, app="web", namespace=ns, seq=1,
                           deployment_id=str(uuid.uuid4()), image=image, config=config, runtime_class="runc")
        objs = [*namespace_objects(tenant, project, ns, Guardrails(), caps), release_secret(spec, {}),
                release_deployment(spec), app_service(ns, tenant, project, "web", spec.release),
                app_ingress(ns, tenant, project, "web", f"web-{project}-{tenant}.apps.localhost", None, None)]
        doc = {"apiVersion": "v1", "kind": "List", "items": objs}
        t = time.perf_counter()
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(doc), text=True, check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "-n", ns, "rollout", "status", "deploy/web-r1", "--timeout=120s"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t)
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], check=True, capture_output=True)
    return times


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
                                              releases, p.tenant)
        empty = await empty_workflow_times(address, max(releases, 20))
    rows = [
        ("create_app acceptance (wait_seconds=0)", accept_times),
        ("create_app call -> serving (orchestration)", orchestration),
        ("floor: kubectl apply + rollout status", kubectl),
        ("floor: empty Temporal workflow", empty),
    ]
    print(f"{'measure':45} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for name, values in rows:
        ms = [v * 1000 for v in values]
        print(f"{name:45} {len(ms):>4} {pct(ms, 50):>9.1f} {pct(ms, 99):>9.1f} {max(ms):>9.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--accept", type=int, default=30)
    ap.add_argument("--releases", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main(a.accept, a.releases))
