"""What `deploy-mcp dev` offers a newcomer in its first minute: the example app (examples/hello) as an image in
the testbed's registry, built in memory from the same page (no builder needed), and the first call to paste.
Part of the dev harness, not the product."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from workflows.domain.names import app_hostname

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "hello"
SAMPLE_REPOSITORY, SAMPLE_TAG = "examples/hello", "v1"
SAMPLE_PROJECT, SAMPLE_APP = "demo", "hello"
FALLBACK_PAGE = "<!doctype html>\n<title>hello from Deploy MCP</title>\n<h1>hello from Deploy MCP</h1>\n"


def sample_page() -> str:
    """The example's page (examples/hello/index.html; a copy when the checkout is not beside the package)."""
    page = EXAMPLE_DIR / "index.html"
    return page.read_text() if page.is_file() else FALLBACK_PAGE


async def push_sample(registry: str) -> str:
    """Push the example app's image to `registry` (plain http, a loopback registry); returns its reference."""
    # the very image shape the testbed tests deploy (the platform sets the pod's non-root user itself)
    await push_image(registry, SAMPLE_REPOSITORY, SAMPLE_TAG, busybox_web_files(sample_page()), cmd=BUSYBOX_HTTPD)
    return f"{registry}/{SAMPLE_REPOSITORY}:{SAMPLE_TAG}"


def first_call(image: str, tenant: str, apps_domain: str, http_port: int, https_port: int,
               hosts_file: Path | None) -> str:
    """The lines dev prints: the create_app call to paste, and how any HTTP client on this machine reaches the
    app: by its name when dev keeps `hosts_file` (glibc resolves names there, not *.localhost), else at the
    edge's loopback address with the app's Host header."""
    host = app_hostname(SAMPLE_APP, SAMPLE_PROJECT, tenant, apps_domain)
    args = {"project": SAMPLE_PROJECT, "name": SAMPLE_APP, "source": {"image": image}, "port": 8080}
    lines = ["First deploy: ask your agent to call create_app with",
             "    " + json.dumps(args),
             "  or, with the MCP Inspector CLI, add: --method tools/call --tool-name create_app "
             + " ".join(f"--tool-arg {k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in args.items())]
    if hosts_file is not None:
        lines += [f"  then, from any HTTP client (dev lists app names in {hosts_file}):",
                  f"    curl http://{host}:{http_port}/      curl -k https://{host}:{https_port}/"]
    else:
        lines += ["  then, from any HTTP client, at the edge's loopback address with the app's Host header:",
                  f"    curl -H 'Host: {host}' http://127.0.0.1:{http_port}/"]
    return "\n".join(lines)
