"""One release under gVisor, checked from inside: the kernel the pod sees is gVisor's (the Sentry reports
"Linux version 4.4.0"), not the host's. The testbed's runsc handler is experimental (gvisor/ in the testbed):
this test runs where `runsc` was built and the `gvisor` RuntimeClass exists, and says why it skips otherwise."""

from __future__ import annotations

import platform as host
from collections.abc import AsyncIterator

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import running_platform

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.last, pytest.mark.timeout(300)]
KERNEL_CGI = "#!/busybox sh\necho 'Content-Type: text/plain'\necho\n/busybox cat /proc/version\n"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    if not (needs_node.cache / "bin" / "runsc").exists():
        pytest.skip("runsc is not built (mcp_server/devenv/testbed/gvisor/runsc-build.sh); "
                    "the gVisor handler is absent")
    settings = platform_settings(database_url, temporal_address, needs_node, cluster={"runtime_class": "gvisor"})
    async with running_platform(settings) as p:
        if await p.kube.get("node.k8s.io/v1", "RuntimeClass", None, "gvisor") is None:
            pytest.skip("the testbed registered no gvisor RuntimeClass (runsc was built after the nodes started)")
        yield p


async def test_release_runs_in_a_gvisor_sandbox(platform: Platform) -> None:
    p = platform
    files = busybox_web_files("sandboxed") | {"www/cgi-bin/kernel": (KERNEL_CGI.encode(), 0o755)}
    await push_image("127.0.0.1:5000", f"{p.tenant}/kernel", "v1", files,
                     cmd=["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"])
    async with p.client() as c:
        r = await c.call_tool("create_app", {"project": "sandbox", "name": "web", "port": 8080,
                                             "source": {"image": f"127.0.0.1:5000/{p.tenant}/kernel:v1"},
                                             "shutdown_grace_seconds": 1})
    assert not r.is_error and r.structured_content is not None, r.content
    assert r.structured_content["phase"] == "succeeded", r.structured_content
    app = await p.deps.store.get_app(p.tenant, "sandbox", "web")
    assert app is not None
    dep = await p.kube.get("apps/v1", "Deployment", app.namespace, "web-r1")
    assert dep is not None and dep["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor"
    text = await p.service_get(app.namespace, "web", "/cgi-bin/kernel", attempts=150)
    assert text.startswith("Linux version"), text
    assert host.release() not in text, f"the pod sees the host kernel: {text}"  # runc would show the host's
    assert "4.4.0" in text, text  # gVisor's Sentry presents itself as Linux 4.4.0
