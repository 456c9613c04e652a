"""Settings: defaults, env vars over the TOML file, flags over both, unknown keys refused; the flat names of
before the grouping (env, TOML, keyword arguments, DATABASE_URL, KUBECONFIG) still work, and a grouped name
given too wins over its flat alias; every field has a docstring and every alias names a real field."""

import os
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from mcp_server.flat_settings import CONVENTIONAL_NAMES, FLAT_NAMES
from mcp_server.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's own environment (an external DATABASE_URL, a KUBECONFIG) must not leak into these."""
    for var in list(os.environ):
        if var.startswith("DEPLOY_MCP_") or var in CONVENTIONAL_NAMES:
            monkeypatch.delenv(var)


def test_defaults_are_loopback_and_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "DEPLOY_MCP_DATABASE_URL", "KUBECONFIG", "DEPLOY_MCP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.http.host, s.http.port, s.http.path) == ("127.0.0.1", 8765, "/mcp")
    assert s.database.url is None and s.temporal.address is None
    assert s.http.mcp_url() == "http://127.0.0.1:8765/mcp"
    assert s.apps.domain() == "apps.localhost" and s.cluster.runtime_class == "gvisor"


def test_precedence_flag_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('http_port = 9000\nplatform_domain = "file.example"\n[operator]\ntenant = "ops"\n')
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    monkeypatch.setenv("DEPLOY_MCP_PLATFORM_DOMAIN", "env.example")
    s = load_settings()
    assert s.http.port == 9000 and s.apps.platform_domain == "env.example" and s.operator.tenant == "ops"
    assert load_settings(http_port=9100).http.port == 9100
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@db/y")
    assert load_settings().database.url == "postgresql://x@db/y"


def test_grouped_precedence_flag_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[http]\nport = 9000\nhost = "10.0.0.5"\n[apps]\nplatform_domain = "file.example"\n')
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    monkeypatch.setenv("DEPLOY_MCP_APPS__PLATFORM_DOMAIN", "env.example")
    monkeypatch.setenv("DEPLOY_MCP_HTTP__PATH", "/agents")
    s = load_settings()
    assert (s.http.host, s.http.port, s.http.path) == ("10.0.0.5", 9000, "/agents")  # groups merge across sources
    assert s.apps.platform_domain == "env.example"
    assert load_settings(http={"port": 9100}).http == s.http.model_copy(update={"port": 9100})


def test_flat_env_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_URL", "https://harbor.example.com/")
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_USERNAME", "admin")
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_PASSWORD", "Pa55")
    monkeypatch.setenv("DEPLOY_MCP_REGISTRY", "harbor.example.com")
    monkeypatch.setenv("DEPLOY_MCP_INSECURE_REGISTRIES", '["registry.lan"]')
    monkeypatch.setenv("DEPLOY_MCP_RELEASE_RETENTION_DAYS", "7")
    monkeypatch.setenv("DEPLOY_MCP_BUILD_IMAGES__CLONE", "mirror/git:1")
    monkeypatch.setenv("DEPLOY_MCP_BUILD_IMAGES__RAILPACK", "mirror/railpack:1")
    monkeypatch.setenv("DEPLOY_MCP_BUILD_IMAGES__BUILDCTL", "mirror/buildkit:1")
    s = load_settings()
    assert s.harbor.url == "https://harbor.example.com" and s.harbor.username == "admin"
    assert s.image_registry.host == "harbor.example.com" and s.image_registry.insecure_hosts == ["registry.lan"]
    assert s.releases.retention_days == 7
    assert (s.build.images.clone, s.build.images.railpack, s.build.images.buildctl) == (
        "mirror/git:1", "mirror/railpack:1", "mirror/buildkit:1")


def test_the_grouped_name_wins_over_its_flat_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_MCP_LOKI_URL", "http://flat-env")
    monkeypatch.setenv("DEPLOY_MCP_LOKI__URL", "http://grouped-env")
    cfg = tmp_path / "c.toml"
    cfg.write_text('loki_tenant = "flat-file"\nhttp_port = 9000\n[loki]\ntenant = "grouped-file"\n')
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    s = load_settings(http_port=9100, http={"port": 9200})
    assert s.loki.url == "http://grouped-env" and s.loki.tenant == "grouped-file" and s.http.port == 9200
    # across sources the source's rank decides: a flat env var beats the grouped file, a flat flag the grouped env
    monkeypatch.setenv("DEPLOY_MCP_LOKI_TENANT", "flat-env")
    monkeypatch.setenv("DEPLOY_MCP_HTTP__PORT", "9300")
    s = load_settings(http_port=9100)
    assert s.loki.tenant == "flat-env" and s.http.port == 9100


def test_conventional_names_come_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://conventional@db/x")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["/etc/first.yaml", "/etc/second.yaml"]))
    s = load_settings()
    assert s.database.url == "postgresql://conventional@db/x" and s.cluster.kubeconfig == Path("/etc/first.yaml")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\nurl = "postgresql://file@db/x"\n[cluster]\nkubeconfig = "/etc/file.yaml"\n')
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    s = load_settings()
    assert s.database.url == "postgresql://file@db/x" and s.cluster.kubeconfig == Path("/etc/file.yaml")
    monkeypatch.setenv("DEPLOY_MCP_DATABASE_URL", "postgresql://flat-env@db/x")
    assert load_settings().database.url == "postgresql://flat-env@db/x"
    monkeypatch.setenv("KUBECONFIG", "")
    monkeypatch.delenv("DEPLOY_MCP_CONFIG")
    assert load_settings().cluster.kubeconfig is None


def test_the_example_config_reads_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[2] / "examples" / "config.toml"
    assert not set(tomllib.loads(example.read_text())) & set(FLAT_NAMES)
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(example))
    s = load_settings()
    assert s.apps.platform_domain == "example.com" and s.build.builder == "buildkit" and s.operator.tenant == "ops"
    assert s.build.images.clone.startswith("harbor.example.com/mirror/")


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and model is Settings:
            out |= _fields(annotation, f"{name}.")
        else:
            out[prefix + name] = info.description
    return out


def test_every_setting_is_described_and_every_alias_names_one() -> None:
    fields = _fields(Settings)
    assert not [name for name, doc in fields.items() if not doc]
    assert not [flat for flat, path in FLAT_NAMES.items() if ".".join(path) not in fields]
    assert not [path for path in CONVENTIONAL_NAMES.values() if ".".join(path) not in fields]
    assert not set(FLAT_NAMES) & set(Settings.model_fields)  # a flat name never shadows a group


def test_unknown_keys_and_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("htp_port = 1\n")
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    with pytest.raises(ValidationError, match="htp_port"):
        load_settings()
    cfg.write_text("[http]\nprt = 1\n")
    with pytest.raises(ValidationError, match=r"http\.prt"):
        load_settings()
    monkeypatch.delenv("DEPLOY_MCP_CONFIG")
    with pytest.raises(ValidationError, match=r"http\.port"):
        load_settings(http_port=70000)
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_settings()


def test_github_app_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_MCP_CONFIG", raising=False)
    s = load_settings()
    assert s.github_app.id is None and s.github_app.private_key_pem() is None
    assert s.github_app.api_url == "https://api.github.com" and s.github_app.hosts == ["github.com"]
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n")
    from_file = load_settings(github_app_id=7, github_app_private_key_file=key)
    assert from_file.github_app.private_key_pem() == key.read_text()
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_APP_ID", "8")
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_APP_PRIVATE_KEY", key.read_text())
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_HOSTS", '["ghe.example.com"]')
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_API_URL", "https://ghe.example.com/api/v3")
    from_env = load_settings()
    assert from_env.github_app.id == 8 and from_env.github_app.private_key_pem() == key.read_text()
    assert from_env.github_app.hosts == ["ghe.example.com"] and "PRIVATE" not in repr(from_env)
    with pytest.raises(ValidationError, match="exactly one of"):
        load_settings(github_app={"private_key_file": key})  # the env's key too
    monkeypatch.delenv("DEPLOY_MCP_GITHUB_APP_PRIVATE_KEY")
    with pytest.raises(ValidationError, match="exactly one of"):
        load_settings()  # an app id without a key
    monkeypatch.delenv("DEPLOY_MCP_GITHUB_APP_ID")
    with pytest.raises(ValidationError, match=r"without github_app\.id"):
        load_settings(github_app={"private_key_file": key})
    with pytest.raises(ValidationError, match=r"github_app\.api_url"):
        load_settings(github_app={"api_url": "api.github.com"})
