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


def test_a_long_value_is_redacted_in_linear_time() -> None:
    """A 1 MiB argument (under the MCP body cap) redacts at once: the audit row is written for every call, so a
    slow pattern here stalls the server for every tenant (it took minutes for 100 KiB). Time grows with the
    size, not its square: 16x the input may take well under 16^2 = 256x the time (a
    ratio measured in the same run, so a loaded machine slows both sides alike)."""
    import time

    def timed(n: int) -> tuple[float, dict[str, str]]:
        started = time.perf_counter()
        out = redact({"a": "p" * n, "b": "x://" + "u" * n, "c": "https://bob:pw@h/" + "y" * n,
                      "d": ("x" * 40 + "://") * (n // 43), "env": {"A": "a://" + "v" * n}})
        return time.perf_counter() - started, out

    small, _ = timed(1 << 16)
    large, out = timed(1 << 20)
    assert large < max(small, 0.001) * 64, (small, large)
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
