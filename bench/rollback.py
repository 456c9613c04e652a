"""rollback: time from the `rollback` call to the Service switch (the selector as a watch of the API server, in a
process of its own, received it) and to the call's return, inside the rollback window (target still running)
and after it (target scaled up first); beside floors measured in the same run: the same switch by a raw API
patch (until its response, and until the same watcher saw it), an empty Temporal workflow, and the durable
floor, their sum (a switch that is durable costs at least a workflow and a patch, observed the same way).
In window it measures two ways: back to back (each call while the previous rollback's follow-up steps, its
scale-down and prune activities and the reconcile pass its success starts, still run in the same process),
and settled (each call once the previous rollback's workflow sleeps in its window, as the floors are measured
on a quiet worker). Goal (issue 20): settled, call -> Service switched under 2x the durable floor.

Run: .venv/bin/python bench/rollback.py [--runs N]   (root: needs the testbed's node)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp.client import Client
from temporalio.client import Client as TemporalClient

from bench._harness import CannotMeasure, Report, empty_workflow_times, platform, quiet, services, timeline
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform
from workflows.domain.labels import LABEL_RELEASE

TINY = {"cpu_millicores": 10, "cpu_limit_millicores": 100, "memory_mib": 32}
HC = {"type": "http", "path": "/index.html", "period_seconds": 1}


class SwitchWatch:
    """The Service's selector changes with the wall-clock time they reached a watcher of their own process
    (bench/_service_watch.py): what the API server shows, undelayed by the platform running in this one."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.events: list[tuple[float, str]] = []
        self._seen = threading.Condition()
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_service_watch.py")), str(kubeconfig), namespace, "web"],
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.wait_for(lambda release: True, 0.0, 30)  # the first event: the Service as it is
        except BaseException:
            self.__exit__()
            raise

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            at, release = line.split()
            with self._seen:
                self.events.append((float(at), release))
                self._seen.notify_all()

    def wait_for(self, want: Callable[[str], bool], since: float, timeout: float) -> float:
        """The wall-clock time of the first event at or after `since` whose release is wanted."""
        def found() -> float | None:
            return next((at for at, release in self.events if at >= since and want(release)), None)
        with self._seen:
            if not self._seen.wait_for(lambda: found() is not None, timeout):
                raise CannotMeasure(f"the watcher saw no wanted switch in {timeout:.0f} s")
            at = found()
        assert at is not None
        return at

    def __enter__(self) -> SwitchWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(10)


Timed = tuple[float, float, str, float]


async def timed_rollback(c: Client, w: SwitchWatch, to: str, want: str) -> Timed:
    """(seconds until the API server showed the switch, seconds until the call returned, the workflow id, the
    wall-clock time of the call), from the `tools/call` on an open session, as an agent calls (its session was
    set up once, not per call)."""
    wall, t0 = time.time(), time.perf_counter()
    r = await c.call_tool("rollback", {"project": "rb", "app": "web", "to": to})
    returned = time.perf_counter() - t0
    assert r.structured_content and r.structured_content["phase"] == "succeeded", r.content
    switched = await asyncio.to_thread(w.wait_for, lambda release: release == want, wall, 30)
    return switched - wall, returned, str(r.structured_content["workflow_id"]), wall


async def settle(address: str, workflow_id: str, timeout: float = 30) -> None:
    """Until the rollback's workflow sleeps in its window: its follow-up steps are done."""
    client = await TemporalClient.connect(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        if any(e.HasField("timer_started_event_attributes") for e in history.events):
            await asyncio.sleep(0.5)  # the reconcile pass its success started
            return
        await asyncio.sleep(0.1)
    raise CannotMeasure(f"{workflow_id} never reached its rollback window in {timeout:.0f} s")


async def setup(p: Platform, image1: str, image2: str) -> tuple[str, str, str]:
    async with p.client() as c:
        a = await c.call_tool("create_app", {"project": "rb", "name": "web", "port": 8080, "resources": TINY,
                                             "source": {"image": image1}, "health_check": HC})
        b = await c.call_tool("deploy", {"project": "rb", "app": "web", "source": {"image": image2}})
    assert a.structured_content and b.structured_content
    app = await p.deps.store.get_app(p.tenant, "rb", "web")
    assert app is not None
    return app.namespace, a.structured_content["deployment_id"], b.structured_content["deployment_id"]


async def raw_patch_times(p: Platform, w: SwitchWatch, ns: str, runs: int) -> tuple[list[float], list[float]]:
    """The same switch by one raw API patch: (until its response, until the watcher saw it). The second is
    the floor of what the rollback's `switched` measures (the same watcher, the same way)."""
    answered, seen = [], []
    for i in range(runs):
        release = "web-r1" if i % 2 == 0 else "web-r2"
        wall, t = time.time(), time.perf_counter()
        await p.kube.api.call_api(
            f"/api/v1/namespaces/{ns}/services/web", "PATCH", header_params={"Content-Type":
            "application/merge-patch+json", "Accept": "application/json"}, body={"spec": {"selector": {
                LABEL_RELEASE: release}}}, auth_settings=["BearerToken"], response_types_map={200: "object"})
        answered.append(time.perf_counter() - t)
        at = await asyncio.to_thread(w.wait_for, lambda r, want=release: r == want, wall, 30)  # type: ignore[misc]
        seen.append(at - wall)
    return answered, seen


async def main(runs: int) -> None:
    quiet()
    with services() as (url, address, tb):
        await push_image("127.0.0.1:5000", "bench/rb", "v1", busybox_web_files("one"), cmd=BUSYBOX_HTTPD)
        await push_image("127.0.0.1:5000", "bench/rb", "v2", busybox_web_files("two"), cmd=BUSYBOX_HTTPD)
        images = ("127.0.0.1:5000/bench/rb:v1", "127.0.0.1:5000/bench/rb:v2")
        async with platform(url, address, tb, releases={"rollback_window_seconds": 3600}) as p:
            ns, d1, d2 = await setup(p, *images)
            with SwitchWatch(tb.kubeconfig, ns) as w:
                async with p.client() as c:
                    warm = [await timed_rollback(c, w, d1 if i % 2 == 0 else d2,
                                                 "web-r1" if i % 2 == 0 else "web-r2") for i in range(runs)]
                    settled: list[Timed] = []
                    for i in range(runs):
                        await settle(address, (settled or warm)[-1][2])
                        settled.append(await timed_rollback(c, w, d1 if i % 2 == 0 else d2,
                                                            "web-r1" if i % 2 == 0 else "web-r2"))
                answered, seen = await raw_patch_times(p, w, ns, runs)
            _, _, last_id, last_at = settled[-1]
            where = await timeline(address, last_id, last_at)
        async with platform(url, address, tb, releases={"rollback_window_seconds": 2}) as p:
            ns, d1, d2 = await setup(p, *images)
            cold = []
            with SwitchWatch(tb.kubeconfig, ns) as w:
                for i in range(max(2, runs // 2)):
                    target, release = (d1, "web-r1") if i % 2 == 0 else (d2, "web-r2")
                    while True:  # wait for the window to close: the target is scaled to zero
                        dep = await p.kube.get("apps/v1", "Deployment", ns, release)
                        if dep and dep["spec"]["replicas"] == 0:
                            break
                        await asyncio.sleep(0.2)
                    async with p.client() as c:
                        cold.append(await timed_rollback(c, w, target, release))
        empty = await empty_workflow_times(address, max(runs, 20))
    report = Report()
    report.add("rollback in window, back to back: call -> Service switched", [w[0] for w in warm])
    report.add("rollback in window, back to back: call -> returned", [w[1] for w in warm])
    report.add("rollback in window, settled: call -> Service switched", [s[0] for s in settled])
    report.add("rollback in window, settled: call -> returned", [s[1] for s in settled])
    report.add("rollback after window: call -> Service switched", [c[0] for c in cold])
    report.add("rollback after window: call -> returned", [c[1] for c in cold])
    report.add("floor: raw API patch of the Service selector, answered", answered)
    report.add("floor: raw API patch of the Service selector, seen", seen)
    report.add("floor: empty Temporal workflow", empty)
    durable = ("floor: empty Temporal workflow", "floor: raw API patch of the Service selector, seen")
    report.ratio("in window settled, switched / durable floor (empty workflow + patch)",
                 "rollback in window, settled: call -> Service switched", durable, goal=2.0)
    report.ratio("in window settled, returned / durable floor", "rollback in window, settled: call -> returned",
                 durable)
    report.ratio("in window back to back, switched / durable floor",
                 "rollback in window, back to back: call -> Service switched", durable)
    report.print("rollback on the testbed")
    print(f"the last settled rollback in window, from its history (switched at {settled[-1][0] * 1000:.1f} ms):")
    print("\n".join(where))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    asyncio.run(main(ap.parse_args().runs))
