"""How large an app's environment (env + secrets) may be, and why: the values land in one Kubernetes Secret per
release and in the environment of the app's process, and both have hard limits that fail far from the call
that caused them (a release that never starts, an exec that fails with E2BIG). The tools refuse earlier,
naming the field, the limit and the size.

Pure, in the domain, because the limits describe what the release Secret and the process can hold, whoever
checks them.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_VARIABLES = 1000
"""Variables per app, env and secrets together. A large app configures a few hundred; thousands are data, and
each one is a key of the release Secret, a name in `get_app` and a line in every audit row of a change."""

MAX_TOTAL_BYTES = 256 * 1024
"""Names + values, UTF-8, env and secrets together, as they land in the release Secret. The Secret holds at
most 1 MiB, and base64 makes 256 KiB of values about 342 KiB of it; the process environment shares Linux's
ARG_MAX (a quarter of the 8 MiB default stack: 2 MiB) with the arguments and the image's own variables; and
the plain env travels in the deploy workflow's input, which Temporal warns about from 512 KiB."""

MAX_VARIABLE_BYTES = 128 * 1024
"""One `NAME=value` string with its terminating NUL, as Linux counts it: `execve` refuses a longer one
(MAX_ARG_STRLEN, 32 pages), so a release carrying it could never start its process."""


def size_text(n: int) -> str:
    """A size the agent reads: '1.2 MiB (1,258,291 bytes)'."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB ({n:,} bytes)"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB ({n:,} bytes)"
    return f"{n:,} bytes"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def value_problem(name: str, value: str) -> str | None:
    """Why one variable cannot be in a process environment, or None. Never quotes the value (it may be a
    secret)."""
    if "\x00" in value:
        return "the value holds a NUL character, which no process environment can carry"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "the value is not valid Unicode text (it holds a lone surrogate)"
    size = _utf8_len(name) + 1 + _utf8_len(value) + 1
    if size > MAX_VARIABLE_BYTES:
        return (f"NAME=value is {size_text(size)}, the limit for one variable is 128 KiB (Linux refuses to start "
                "a process with a longer environment string)")
    return None


def environment_size(values: Mapping[str, str]) -> int:
    """Bytes of names and values, as the release Secret holds them."""
    return sum(_utf8_len(k) + _utf8_len(v) for k, v in values.items())


def environment_problem(env: Mapping[str, str], secrets: Mapping[str, str]) -> str | None:
    """Why this env + secrets cannot be one release's environment, or None. Secrets win over env vars of the
    same name, as in the release Secret."""
    merged = {**env, **secrets}
    if len(merged) > MAX_VARIABLES:
        return f"{len(merged):,} variables, the limit is {MAX_VARIABLES:,}"
    size = environment_size(merged)
    if size > MAX_TOTAL_BYTES:
        return f"{size_text(size)} of names and values, the limit is 256 KiB"
    return None
