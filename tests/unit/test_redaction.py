"""Redaction of audit arguments: declared secret args, secret-looking keys, credential-looking values."""

from tools.redaction import REDACTED, redact


def test_declared_secret_arguments_keep_names_lose_values() -> None:
    out = redact({"values": {"DB_PASSWORD": "hunter2", "API": "x"}, "app": "web"}, frozenset({"values"}))
    assert out == {"values": {"DB_PASSWORD": REDACTED, "API": REDACTED}, "app": "web"}


def test_secret_looking_keys_are_redacted_anywhere() -> None:
    out = redact({"env": {"STRIPE_SECRET_KEY": "sk_live_1", "PORT": "8080"}, "git": {"token": "abc"}})
    assert out["env"] == {"STRIPE_SECRET_KEY": REDACTED, "PORT": "8080"}
    assert out["git"] == {"token": REDACTED}
    assert redact({"secrets": {"A": "b"}})["secrets"] == {"A": REDACTED}


def test_credential_looking_values_are_redacted() -> None:
    out = redact({
        "note": "dmcp_" + "x" * 40,
        "gh": "ghp_" + "a" * 36,
        "key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc",
        "url": "https://bob:s3cret@git.example.com/repo.git",
        "plain": "hello",
        "n": 3,
    })
    assert out["note"] == REDACTED and out["gh"] == REDACTED and out["key"] == REDACTED
    assert out["url"] == f"https://bob:{REDACTED}@git.example.com/repo.git"
    assert out["plain"] == "hello" and out["n"] == 3
    assert "s3cret" not in str(out)


def test_large_values_redact_in_linear_time() -> None:
    """A 1 MiB argument (under the MCP body cap) is redacted at once: the audit row is written for every call,
    so a slow pattern here would stall the server for every tenant (it took minutes for 100 KiB)."""
    import time

    start = time.monotonic()
    for value in ("v" * 2**20, "a://" + "v" * 2**20, ("x" * 40 + "://") * (2**20 // 43)):
        assert redact({"env": {"A": value}}) == {"env": {"A": value}}
    assert time.monotonic() - start < 5


def test_a_long_value_is_redacted_in_linear_time() -> None:
    import time

    started = time.monotonic()
    out = redact({"a": "p" * (1 << 20), "b": "x://" + "u" * (1 << 20), "c": "https://bob:pw@h/" + "y" * (1 << 20)})
    assert time.monotonic() - started < 2.0
    assert out["a"] == "p" * (1 << 20) and out["c"].startswith(f"https://bob:{REDACTED}@h/")


def test_storable_escapes_what_postgres_cannot_hold_and_clips() -> None:
    from tools.redaction import CLIP_CHARS, storable, storable_text

    assert storable({"k\x00": ["a\x00b", "\ud800", {"x": "\udfff"}], "n": 1}) == {
        "k\\u0000": ["a\\u0000b", "\\ud800", {"x": "\\udfff"}], "n": 1}
    assert storable_text("ok") == "ok"
    clipped = storable_text("z" * (CLIP_CHARS + 5))
    assert clipped == "z" * CLIP_CHARS + "…[5 more characters]"
    assert storable_text("tool-name-" * 20, 64).startswith("tool-name-") and "more characters" in storable_text(
        "tool-name-" * 20, 64)
