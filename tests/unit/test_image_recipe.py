"""The platform image's recipe as documented: BASE build argument, uid 10001, entrypoint and default command,
HOME on the writable /tmp, OCI labels; the base's mirror lookup from this machine's apt sources; which
registries are pushed to over plain http."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcp_server.devenv.image_base import DEFAULT_MIRROR, DEFAULT_SECURITY, PACKAGES, Mirrors, host_mirrors, recipe_key
from mcp_server.devenv.platform_image import CONTAINERFILE, REPO_ROOT, default_ref, insecure_registry, package_version


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined, comments dropped."""
    text = (REPO_ROOT / CONTAINERFILE).read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_base_is_a_build_argument_defaulting_to_the_public_python_slim() -> None:
    ins = instructions()
    assert ins[0] == ("ARG", "BASE=docker.io/library/python:3.11-slim-bookworm")
    assert [a for w, a in ins if w == "FROM"] == ["${BASE} AS deps", "deps AS build", "${BASE}"]


def test_final_stage_runs_deploy_mcp_as_10001_with_home_on_tmp() -> None:
    final = final_stage()
    assert ("USER", "10001:10001") in final
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["deploy-mcp"]
    assert json.loads(dict(final)["CMD"]) == ["serve", "--transport", "http", "--host", "0.0.0.0"]  # noqa: S104
    env = dict(final)["ENV"]
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env and "PATH=/opt/deploy-mcp/bin:" in env
    assert ("WORKDIR", "/tmp") in final
    labels = dict(final)["LABEL"]
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.source="${SOURCE}"' in labels
    # only the venv comes from the build stage: no wheels, no build tools
    assert [a for w, a in final if w == "COPY"] == ["--from=build /opt/deploy-mcp /opt/deploy-mcp"]


def test_the_useradd_matches_the_user_line() -> None:
    run = " ".join(a for w, a in final_stage() if w == "RUN")
    assert "--uid 10001 --gid 10001" in run and "--shell /usr/sbin/nologin" in run


def test_image_name_carries_the_package_version() -> None:
    assert default_ref() == f"ghcr.io/deploy-mcp/deploy-mcp:{package_version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", package_version())


@pytest.mark.parametrize(
    ("dest", "insecure"),
    [
        ("127.0.0.1:5000/deploy-mcp:0.1.0", True),
        ("docker://127.0.0.1:5000/deploy-mcp:0.1.0", True),
        ("localhost:5000/x:y", True),
        ("[::1]:5000/x:y", True),
        ("ghcr.io/deploy-mcp/deploy-mcp:0.1.0", False),
        ("registry.example.com:5000/x:y", False),
        ("10.0.0.5:5000/x:y", False),
    ],
)
def test_plain_http_only_for_loopback_registries(dest: str, insecure: bool) -> None:
    assert insecure_registry(dest) is insecure


def test_mirrors_come_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert host_mirrors(tmp_path) == Mirrors("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_mirrors_come_from_a_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://ftp.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    assert host_mirrors(tmp_path) == Mirrors("http://ftp.example/debian", "http://security.example/debian-security")


def test_mirrors_default_to_deb_debian_org(tmp_path: Path) -> None:
    assert host_mirrors(tmp_path) == Mirrors(DEFAULT_MIRROR, DEFAULT_SECURITY)


def test_the_base_cache_key_follows_the_package_list() -> None:
    assert recipe_key() == recipe_key(tuple(reversed(PACKAGES)))
    assert recipe_key() != recipe_key((*PACKAGES, "curl"))
    assert recipe_key() != recipe_key(suite="trixie")
