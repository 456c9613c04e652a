"""The seed's end-to-end slice as one test, through the MCP protocol only, on the two-node testbed:
git push -> build -> deploy -> logs -> rollback -> node failure reschedule -> volume persists -> audit.
Storage: no Longhorn runs here; FakeLonghorn's host directories are reachable from both nodes, so the
volume follows the pod as a Longhorn volume would. A node "dies" for real: its kubelet and containerd stop
and its containers are killed (node-stop.sh); the control plane evicts and the scheduler moves the app."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.git_server import GitHttpsServer, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.devenv.slice import Slice, make_slice_repo
from tests.conftest import Edge
from tests.support.platform import running_platform

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.last, pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="the slice builds with buildah and kills a kubelet node: root (CI has both)"),
]
TOKEN = "ghs_sliceTest0Token0never0shown0123456"
RESCHEDULE_BOUND = 120  # seconds; the grace (Testbed.NODE_MONITOR_GRACE_SECONDS) + the toleration + a start


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed, workdir: Path
                   ) -> AsyncIterator[tuple[Platform, Path]]:
    tls = self_signed_tls(Path(tempfile.mkdtemp(prefix="slice-tls-")))
    settings = platform_settings(database_url, temporal_address, needs_node,
                                 git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
                                 build={"dir": workdir / "slice-builds"}, releases={"ready_timeout_seconds": 180})
    async with running_platform(settings) as p:
        yield p, tls[0].parent


async def test_push_build_deploy_logs_rollback_node_failure_volume(
        platform: tuple[Platform, Path], needs_node: Testbed, edge: Edge) -> None:
    p, tls_dir = platform
    repos = Path(tempfile.mkdtemp(prefix="slice-repos-"))
    work = Path(tempfile.mkdtemp(prefix="slice-work-"))
    server = GitHttpsServer(repos, tls_dir / "cert.pem", tls_dir / "key.pem", TOKEN)
    await push_image("127.0.0.1:5000", f"{p.tenant}/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
    make_slice_repo(repos, work, "slice", f"127.0.0.1:5000/{p.tenant}/base:v1", str(repos / "slice.git"))
    server.start()
    s = Slice(platform=p, testbed=needs_node, git_url=server.url("slice.git"), work=work, token=TOKEN,
              edge_http_port=edge.http_port)
    started = time.monotonic()
    try:
        times = await s.run()
    finally:
        server.stop()
        if s.killed:
            needs_node.start_node(s.killed)  # the next tests get both nodes back
    total = time.monotonic() - started
    print(f"slice: total {total:.1f} s")
    assert times["rescheduled after node death"] < RESCHEDULE_BOUND, times
    assert total < 600, f"the slice took {total:.0f} s (bound: 10 minutes)"
