"""The `backup` settings group: target URLs are file:///dir or s3://bucket/prefix without credentials, one of
key and key_file, S3 credentials in pairs; the key file is read when asked; names and fixes in the errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from mcp_server.backup.targets import FileTarget, S3Target, archive_name, open_target, split_source
from mcp_server.settings import BackupSettings, load_settings


def test_targets_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "k"
    key_file.write_text("a-key\n")
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__TARGET", "s3://bucket/plane-a")
    monkeypatch.setenv("DEPLOY_MCP_BACKUP__KEY_FILE", str(key_file))
    s = load_settings().backup
    assert s.target == "s3://bucket/plane-a" and s.key_text() == "a-key\n"
    for bad, why in (("ftp://x/y", "must be file:///"), ("file://relative", "must be file:///"),
                     ("s3://AKIA:secret@bucket/x", "must not carry credentials")):
        with pytest.raises(ValidationError, match=why):
            BackupSettings(target=bad)
    with pytest.raises(ValidationError, match=r"one of backup\.key and backup\.key_file"):
        BackupSettings(key="k", key_file=key_file)
    with pytest.raises(ValidationError, match="go together"):
        BackupSettings(access_key_id="AKIA")


def test_target_urls_and_sources(tmp_path: Path) -> None:
    settings = BackupSettings(endpoint_url="http://127.0.0.1:9000", region="eu-1")
    assert isinstance(open_target(f"file://{tmp_path}", settings), FileTarget)
    s3 = open_target("s3://bucket/a/b", settings)
    assert isinstance(s3, S3Target) and (s3.bucket, s3.prefix) == ("bucket", "a/b/")
    assert "secret" not in s3.display
    name = archive_name(datetime(2026, 12, 2, 1, 2, 3, 456789))
    assert name == "deploy-mcp-20261202T010203.456Z.dmcpbak"
    assert split_source(f"s3://bucket/a/{name}") == ("s3://bucket/a/", name)
    assert split_source("s3://bucket/a/") == ("s3://bucket/a/", None)
    assert split_source("latest") == ("", None) and split_source(name) == ("", name)
