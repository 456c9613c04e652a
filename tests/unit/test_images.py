"""Image references: parsing and normalisation as distribution/reference does it, helpful messages for
invalid ones, and the pinned form a deployment runs."""

from __future__ import annotations

import pytest

from workflows.domain.images import EXAMPLE, ImageRef, InvalidImageRef, parse_image

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker.io/library/nginx:1.25-alpine", "docker.io", "library/nginx", "1.25-alpine", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
        ("127.0.0.1:5000/demo/web:v1", "127.0.0.1:5000", "demo/web", "v1", None),
        ("[::1]:5000/demo/web:v1", "[::1]:5000", "demo/web", "v1", None),
        (f"ghcr.io/org/app@{D}", "ghcr.io", "org/app", None, D),
        (f"registry.example.com:443/a/b/c:tag@{D}", "registry.example.com:443", "a/b/c", "tag", D),
        (f"nginx@{D}", "docker.io", "library/nginx", None, D),
        ("quay.io/org/app:v1.2.3-rc.1_build.7", "quay.io", "org/app", "v1.2.3-rc.1_build.7", None),
        ("ghcr.io/org/my-app__x.y:UPPER_case", "ghcr.io", "org/my-app__x.y", "UPPER_case", None),
        ("my-registry.local/app---x:_t", "my-registry.local", "app---x", "_t", None),
        ("registry/app", "docker.io", "registry/app", "latest", None),  # no "." or ":": a Docker Hub path
        ("a" * 126 + ":" + "t" * 128, "docker.io", "library/" + "a" * 126, "t" * 128, None),
        (f"ghcr.io/org/app@sha512:{'ab' * 64}", "ghcr.io", "org/app", None, f"sha512:{'ab' * 64}"),
        (f"ghcr.io/org/app@blake3+x:{'A' * 32}", "ghcr.io", "org/app", None, f"blake3+x:{'A' * 32}"),
    ],
)
def test_valid_references(ref: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    parsed = parse_image(ref)
    assert parsed == ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
    assert parse_image(str(parsed)) == parsed  # str() is a normal form that parses back to itself


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("", "the reference is empty"),
        ("MyOrg/app:1.0", "uppercase letters are not allowed in the repository path ('MyOrg')"),
        ("ghcr.io/Org/App", "uppercase letters are not allowed in the repository path ('Org')"),
        ("nginx:1.25!", "tag '1.25!' may hold only letters, digits, '_', '.' and '-'"),
        ("nginx:.hidden", "must not start with '.' or '-'"),
        ("nginx:" + "t" * 129, "the tag is 129 characters; at most 128 are allowed"),
        ("nginx:", "nothing follows ':'"),
        ("nginx@sha256:abc", "is not of the form sha256:<64 lowercase hex characters>"),
        (f"nginx@sha256:{'A' * 64}", "must have exactly 64 lowercase hex characters after 'sha256:'"),
        (f"nginx@sha256:{'a' * 63}0a", "must have exactly 64 lowercase hex characters"),
        ("nginx@", "nothing follows '@'"),
        ("http://x/y", "drop the 'http://' or 'https://' prefix"),
        ("https://ghcr.io/org/app:v1", "a reference has no scheme"),
        ("nginx :1.25", "the reference contains whitespace"),
        (" nginx", "the reference contains whitespace"),
        ("nginx\n", "the reference contains whitespace"),
        ("ghcr.io/org/app/", "the name ends with '/'"),
        ("/app", "the name starts with '/'"),
        ("ghcr.io//app", "the name has '//'"),
        ("ghcr.io/", "the name ends with '/'"),
        (":v1", "the repository name is empty"),
        ("org/-app", "repository path component '-app' may hold only a-z, 0-9"),
        ("org/app_", "must start and end with a letter or digit"),
        ("org/a___b", "repository path component 'a___b'"),
        ("ex ample.com/app", "contains whitespace"),
        ("exa_mple.com/app", "registry host 'exa_mple.com' is not a host name or IP address"),
        ("host:port/app", "registry host 'host:port'"),
        ("a/" + "b" * 254, "the name is 256 characters; at most 255 are allowed"),
    ],
)
def test_invalid_references_say_what_is_wrong_and_show_a_valid_one(ref: str, words: str) -> None:
    with pytest.raises(InvalidImageRef) as info:
        parse_image(ref)
    message = str(info.value)
    assert message.startswith("invalid image reference: ")
    assert words in message
    assert f"e.g. {EXAMPLE}" in message
    assert isinstance(info.value, ValueError)


def test_credentials_in_a_reference_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidImageRef, match="credentials do not belong in an image reference") as info:
        parse_image("robot:hunter2@registry.example.com/team/app:1.0")
    assert "hunter2" not in str(info.value)


def test_pathological_names_fail_fast() -> None:
    # The grammar's `[-]*` separator backtracks exponentially when written literally; this returns at once.
    with pytest.raises(InvalidImageRef):
        parse_image("a" + "-a" * 100 + "_")


def test_pinned_keeps_the_registry_as_written() -> None:
    assert parse_image("127.0.0.1:5000/demo/web:v1").pinned(D) == f"127.0.0.1:5000/demo/web@{D}"
    assert parse_image("nginx:1.25").pinned(D) == f"docker.io/library/nginx@{D}"
    assert parse_image(f"ghcr.io/org/app:v1@{D}").pinned(D) == f"ghcr.io/org/app@{D}"
    assert parse_image(parse_image("nginx").pinned(D)) == ImageRef("docker.io", "library/nginx", None, D)
    with pytest.raises(InvalidImageRef, match="digest 'v1' is not of the form"):
        parse_image("nginx").pinned("v1")


def test_api_host_reference_and_str() -> None:
    hub = parse_image("nginx")
    assert hub.api_host == "registry-1.docker.io"
    assert hub.registry == "docker.io"
    assert hub.name == "docker.io/library/nginx"
    assert hub.reference == "latest"
    assert str(hub) == "docker.io/library/nginx:latest"

    local = parse_image("localhost:5000/a/b:t")
    assert local.api_host == "localhost:5000"
    assert local.reference == "t"

    both = parse_image(f"registry.example.com:443/a/b/c:tag@{D}")
    assert both.reference == D  # the digest wins over the tag
    assert str(both) == f"registry.example.com:443/a/b/c:tag@{D}"


def test_an_image_ref_needs_a_tag_or_a_digest() -> None:
    with pytest.raises(InvalidImageRef, match="needs a tag or a digest"):
        ImageRef(registry="docker.io", repository="library/nginx")
