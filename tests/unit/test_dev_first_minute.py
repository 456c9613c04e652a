"""What `deploy-mcp dev` hands a newcomer: the Claude Desktop example is the stdio config dev prints for its
defaults (the embedded Postgres on 54329, not 5432), the first call to paste names the example image and a URL
any HTTP client resolves, and the hosts-file block that makes app names resolve is kept apart from the rest of
the file, rewritten and removed."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_server.devenv.demo import EXAMPLE_DIR, FALLBACK_PAGE, first_call, sample_page
from mcp_server.devenv.dev import client_configs
from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer
from mcp_server.devenv.hosts import BEGIN, END, HostsFile, with_block
from mcp_server.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "claude_desktop_config.json"


def test_the_desktop_example_is_what_dev_prints_for_its_defaults(tmp_path: Path) -> None:
    defaults = Settings(state_dir=Path("/var/lib/deploy-mcp"))
    pg = EmbeddedPostgres(tmp_path, port=defaults.dev.postgres_port)
    temporal = TemporalDevServer(tmp_path, port=defaults.dev.temporal_port)
    settings = defaults.model_copy(update={
        "database": defaults.database.model_copy(update={"url": pg.url}),
        "temporal": defaults.temporal.model_copy(update={"address": temporal.address})})
    printed = client_configs(settings, "dmcp_x").splitlines()
    stdio = json.loads(printed[printed.index("  Claude Desktop / Claude Code (stdio):") + 1])
    example = json.loads(EXAMPLE.read_text())
    example["mcpServers"]["deploy-mcp"]["command"] = stdio["mcpServers"]["deploy-mcp"]["command"]
    assert example == stdio
    assert "54329" in EXAMPLE.read_text()


def test_the_first_call_names_the_example_and_a_resolvable_url() -> None:
    image = "127.0.0.1:5000/examples/hello:v1"
    with_hosts = first_call(image, "dev", "apps.localhost", 8080, 8443, Path("/etc/hosts"))
    call = json.loads(with_hosts.splitlines()[1])
    assert call == {"project": "demo", "name": "hello", "source": {"image": image}, "port": 8080}
    assert "curl http://hello-demo-dev.apps.localhost:8080/" in with_hosts
    without = first_call(image, "dev", "apps.localhost", 8080, 8443, None)
    assert "curl -H 'Host: hello-demo-dev.apps.localhost' http://127.0.0.1:8080/" in without
    assert sample_page() == (EXAMPLE_DIR / "index.html").read_text() and "hello from Deploy MCP" in FALLBACK_PAGE


def test_the_hosts_block_is_kept_apart_rewritten_and_removed(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    original = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.5 db.internal"
    hosts.write_text(original)
    f = HostsFile(hosts)
    assert f.sync(["b-demo-dev.apps.localhost", "a-demo-dev.apps.localhost", "not a name!"])
    text = hosts.read_text()
    assert text.startswith(original + "\n" + BEGIN + "\n")
    assert text.endswith("127.0.0.1 a-demo-dev.apps.localhost\n127.0.0.1 b-demo-dev.apps.localhost\n" + END + "\n")
    assert not f.sync(["a-demo-dev.apps.localhost", "b-demo-dev.apps.localhost"])  # unchanged: not rewritten
    f.sync(["c-demo-dev.apps.localhost"])
    assert hosts.read_text().count(BEGIN) == 1 and "a-demo" not in hosts.read_text()
    f.clear()
    assert hosts.read_text() == original + "\n"
    assert with_block("x\n", []) == "x\n"
