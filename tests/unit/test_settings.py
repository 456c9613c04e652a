"""Settings: defaults, env vars over the TOML file, flags over both, unknown keys refused."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from mcp_server.config import load_settings


def test_defaults_are_loopback_and_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "DEPLOY_MCP_DATABASE_URL", "KUBECONFIG", "DEPLOY_MCP_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert (s.http_host, s.http_port, s.http_path) == ("127.0.0.1", 8765, "/mcp")
    assert s.resolved_database_url() is None and s.temporal_address is None
    assert s.mcp_url() == "http://127.0.0.1:8765/mcp"
    assert s.apps_domain() == "apps.localhost" and s.runtime_class == "gvisor"


def test_precedence_flag_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('http_port = 9000\nplatform_domain = "file.example"\n[operator]\ntenant = "ops"\n')
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    monkeypatch.setenv("DEPLOY_MCP_PLATFORM_DOMAIN", "env.example")
    s = load_settings()
    assert s.http_port == 9000 and s.platform_domain == "env.example" and s.operator.tenant == "ops"
    assert load_settings(http_port=9100).http_port == 9100
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@db/y")
    assert load_settings().resolved_database_url() == "postgresql://x@db/y"


def test_unknown_keys_and_bad_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("htp_port = 1\n")
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(cfg))
    with pytest.raises(ValidationError, match="htp_port"):
        load_settings()
    monkeypatch.delenv("DEPLOY_MCP_CONFIG")
    with pytest.raises(ValidationError, match="http_port"):
        load_settings(http_port=70000)
    monkeypatch.setenv("DEPLOY_MCP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_settings()


def test_github_app_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_MCP_CONFIG", raising=False)
    s = load_settings()
    assert s.github_app_id is None and s.github_app_private_key_pem() is None
    assert s.github_api_url == "https://api.github.com" and s.github_hosts == ["github.com"]
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n")
    from_file = load_settings(github_app_id=7, github_app_private_key_file=key)
    assert from_file.github_app_private_key_pem() == key.read_text()
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_APP_ID", "8")
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_APP_PRIVATE_KEY", key.read_text())
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_HOSTS", '["ghe.example.com"]')
    monkeypatch.setenv("DEPLOY_MCP_GITHUB_API_URL", "https://ghe.example.com/api/v3")
    from_env = load_settings()
    assert from_env.github_app_id == 8 and from_env.github_app_private_key_pem() == key.read_text()
    assert from_env.github_hosts == ["ghe.example.com"] and "PRIVATE" not in repr(from_env)
    with pytest.raises(ValidationError, match="exactly one of"):
        load_settings(github_app_private_key_file=key)  # the env's key too
    monkeypatch.delenv("DEPLOY_MCP_GITHUB_APP_PRIVATE_KEY")
    with pytest.raises(ValidationError, match="exactly one of"):
        load_settings()  # an app id without a key
    monkeypatch.delenv("DEPLOY_MCP_GITHUB_APP_ID")
    with pytest.raises(ValidationError, match="without github_app_id"):
        load_settings(github_app_private_key_file=key)
    with pytest.raises(ValidationError, match="github_api_url"):
        load_settings(github_api_url="api.github.com")
