"""The environment caps (workflows/domain/env_limits.py) at their edges, and the request fingerprints of
idempotency keys (tools/idempotency.py).

- Exactly at each cap is accepted, one past it refused with the size and the limit; sizes count UTF-8 bytes
  of names and values; a secret and an env var of one name count once, as in the release Secret.
- One `NAME=value` counts as Linux does (with its NUL); NUL and lone surrogates are refused; no message
  quotes a value.
- Fingerprints: defaults and omissions alike, one digest per argument, secret digests keyed (equal under one
  key, different under another, never the plain SHA-256), differences named.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.fernet import Fernet

from tools.context import CallContext, PlatformConfig, Principal
from tools.idempotency import differing, request_fingerprint
from workflows.domain.env_limits import (
    MAX_TOTAL_BYTES,
    MAX_VARIABLE_BYTES,
    MAX_VARIABLES,
    environment_problem,
    size_text,
    value_problem,
)
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import Resources


def test_variable_count_edge() -> None:
    env = {f"V{i}": "" for i in range(MAX_VARIABLES - 1)}
    assert environment_problem(env, {"S": "x"}) is None
    assert environment_problem(env, {"S": "x", "T": "y"}) == "1,001 variables, the limit is 1,000"
    assert environment_problem(env, {"V1": "secret wins"}) is None  # one name counts once


def test_total_size_edge_counts_utf8_bytes() -> None:
    name = "BIG"
    at_limit = {name: "x" * (MAX_TOTAL_BYTES - len(name))}
    assert environment_problem(at_limit, {}) is None
    problem = environment_problem(at_limit, {"A": ""})
    assert problem is not None and "256.0 KiB (262,145 bytes)" in problem and "the limit is 256 KiB" in problem
    euro = {"E": "€" * (MAX_TOTAL_BYTES // 3 + 1)}  # 3 bytes each in UTF-8: over, in fewer characters
    assert environment_problem(euro, {}) is not None


def test_one_variable_counts_as_linux_does() -> None:
    fits = "v" * (MAX_VARIABLE_BYTES - len("NAME=") - 1)
    assert value_problem("NAME", fits) is None
    problem = value_problem("NAME", fits + "v")
    assert problem is not None and "128 KiB" in problem and "vvv" not in problem


def test_values_a_process_cannot_carry() -> None:
    assert "NUL" in (value_problem("A", "hunter2\x00") or "")
    assert "surrogate" in (value_problem("A", "hunter2\ud800") or "")
    assert "hunter2" not in (value_problem("A", "hunter2\x00") or "")


def test_size_text() -> None:
    assert size_text(900) == "900 bytes"
    assert size_text(1536) == "1.5 KiB (1,536 bytes)"
    assert size_text(int(1.2 * 1024 * 1024)) == "1.2 MiB (1,258,291 bytes)"


def _ctx(key: bytes) -> CallContext:
    return CallContext(principal=Principal("acme", "agent", frozenset(), "memory"), store=None,  # type: ignore[arg-type]
                       config=PlatformConfig(apps_domain="apps.test"), secretbox=SecretBox(key))


def test_fingerprints_treat_defaults_and_omissions_alike() -> None:
    c = _ctx(Fernet.generate_key())
    a = request_fingerprint(c, "create_app", {"port": 8080, "env": None, "resources": Resources(),
                                              "wait_seconds": 0, "idempotency_key": "k"})
    b = request_fingerprint(c, "create_app", {"port": 8080, "env": {}, "resources": Resources(cpu_millicores=250),
                                              "wait_seconds": 60})
    assert a == b and set(a["args"]) == {"port", "resources"}
    other = request_fingerprint(c, "create_app", {"port": 8081, "resources": Resources()})
    assert differing(a, other) == ["port"]


def test_secret_digests_are_keyed() -> None:
    key = Fernet.generate_key()
    args = {"secrets": {"TOKEN": "hunter2"}}
    one = request_fingerprint(_ctx(key), "deploy", args, frozenset({"secrets"}))
    assert one == request_fingerprint(_ctx(key), "deploy", args, frozenset({"secrets"}))
    assert one != request_fingerprint(_ctx(Fernet.generate_key()), "deploy", args, frozenset({"secrets"}))
    plain = hashlib.sha256(json.dumps(args["secrets"], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert one["args"]["secrets"] != plain and "hunter2" not in json.dumps(one)
