"""`deploy-mcp secrets rotate` on a real Postgres: with a new key put first, every stored ciphertext (secrets
versions, git credentials, Harbor robot secrets) is re-encrypted under it, in batches; a second run changes
nothing (idempotent); then the old key can be removed and everything still decrypts. Ciphertext no configured
key opens is left alone, named, and fails the command."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from mcp_server.cli import main
from mcp_server.store import PgStore
from tests.support.records import ciphertexts, seed
from workflows.domain.secretbox import SecretBox, SecretBoxError

OLD, NEW = SecretBox.generate_key(), SecretBox.generate_key()


def test_rotate_reencrypts_everything_then_the_old_key_can_go(
        database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def seeded() -> None:
        store = await PgStore.open(database_url)
        try:
            await seed(store, SecretBox(OLD))
        finally:
            await store.close()

    asyncio.run(seeded())
    before = ciphertexts(database_url)
    plain = [SecretBox(OLD).open(c) for c in before]
    monkeypatch.setenv("DEPLOY_MCP_DATABASE__URL", database_url)
    monkeypatch.setenv("DEPLOY_MCP_SECRETS_KEY", f"{NEW},{OLD}")
    assert main(["secrets", "rotate", "--batch-size", "1"]) == 0  # batches of one: the paging is exercised
    out = capsys.readouterr().out
    assert "secret_versions: 2 re-encrypted, 0 already" in out and "git_credentials: 1 re-encrypted" in out
    assert "harbor_robots: 1 re-encrypted" in out

    assert main(["secrets", "rotate"]) == 0
    assert "secret_versions: 0 re-encrypted, 2 already under the current key" in capsys.readouterr().out

    after = ciphertexts(database_url)
    assert not set(after) & set(before)
    assert sorted(map(str, (SecretBox(NEW).open(c) for c in after))) == sorted(map(str, plain))
    for c in after:
        with pytest.raises(SecretBoxError):
            SecretBox(OLD).open(c)


def test_ciphertext_no_key_opens_is_named_and_left_alone(
        database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = SecretBox(SecretBox.generate_key()).seal({"x": "y"})

    async def seeded() -> None:
        store = await PgStore.open(database_url)
        try:
            await seed(store, SecretBox(OLD))
            await store.set_git_credentials("acme", "gitlab.example", "token", "u", stranger, "alice")
        finally:
            await store.close()

    asyncio.run(seeded())
    monkeypatch.setenv("DEPLOY_MCP_DATABASE__URL", database_url)
    monkeypatch.setenv("DEPLOY_MCP_SECRETS_KEY", f"{NEW},{OLD}")
    assert main(["secrets", "rotate"]) == 1
    assert "git_credentials: 1 re-encrypted, 0 already under the current key, 1 unreadable" in \
        capsys.readouterr().out
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT ciphertext FROM git_credentials WHERE host = 'gitlab.example'").fetchone()
    assert row is not None and bytes(row[0]) == stranger
