"""Image references: the one parser for the "registry/repository:tag@digest" strings agents hand the platform.

Follows the grammar of distribution/reference (the reference implementation behind Docker, containerd and
the OCI registry): a first path component is a registry host only when it contains "." or ":" or is
"localhost"; otherwise the image lives on Docker Hub (docker.io), and single-component names get
"library/". A reference without a tag or digest means ":latest". Deployments pin images to a digest
(`ImageRef.pinned`), so what runs is exactly what was resolved.

Pure: no I/O imports, shared by the tools (to validate input) and the workflows (to pin and render).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255
TAG_MAX = 128

EXAMPLE = "registry.example.com/team/app:1.2"
_HINT = f"e.g. {EXAMPLE}, team/app@sha256:<64 hex characters> or nginx:1.25"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?",
    re.ASCII,
)
# The grammar's separator is `[_.]|__|[-]*`; `-+` matches the same names without the zero-width
# alternative, which would make a failed match backtrack exponentially on long inputs.
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", re.ASCII)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}", re.ASCII)
_KNOWN_DIGEST_RE = {
    "sha256": re.compile(r"[a-f0-9]{64}", re.ASCII),
    "sha512": re.compile(r"[a-f0-9]{128}", re.ASCII),
}


class InvalidImageRef(ValueError):
    """A string that is not an image reference; the message says what is wrong and what a valid one looks like."""


def _invalid(problem: str) -> InvalidImageRef:
    return InvalidImageRef(f"invalid image reference: {problem}; {_HINT}")


def _show(part: str, limit: int = 80) -> str:
    return repr(part if len(part) <= limit else part[:limit] + "...")


def digest_problem(digest: str) -> str | None:
    """Why `digest` is not a content digest ("sha256:<64 lowercase hex>"), or None when it is."""
    if not _DIGEST_RE.fullmatch(digest):
        return f"digest {_show(digest)} is not of the form sha256:<64 lowercase hex characters>"
    algorithm, _, encoded = digest.partition(":")
    known = _KNOWN_DIGEST_RE.get(algorithm)
    if known is not None and not known.fullmatch(encoded):
        length = 64 if algorithm == "sha256" else 128
        return f"digest {_show(digest)} must have exactly {length} lowercase hex characters after '{algorithm}:'"
    return None


@dataclass(frozen=True)
class ImageRef:
    """A parsed, normalised image reference. `registry` is the host as written (with its port); `repository`
    is the path inside it (Docker Hub's official images get "library/")."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is None and self.digest is None:
            raise _invalid("an ImageRef needs a tag or a digest")

    @property
    def name(self) -> str:
        """`<registry>/<repository>`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host (and port) serving the distribution API: Docker Hub's API is not at docker.io."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after /manifests/ in the API: the digest when there is one, else the tag."""
        if self.digest is not None:
            return self.digest
        assert self.tag is not None  # __post_init__
        return self.tag

    def pinned(self, digest: str) -> str:
        """`<registry>/<repository>@<digest>`: the reference a deployment runs, immune to tag moves."""
        problem = digest_problem(digest)
        if problem:
            raise _invalid(problem)
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += f":{self.tag}"
        if self.digest is not None:
            s += f"@{self.digest}"
        return s


def _is_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _path_problem(component: str) -> str | None:
    if _PATH_COMPONENT_RE.fullmatch(component):
        return None
    if component != component.lower() and _PATH_COMPONENT_RE.fullmatch(component.lower()):
        return f"uppercase letters are not allowed in the repository path ({_show(component)})"
    return (
        f"repository path component {_show(component)} may hold only a-z, 0-9 and the separators '.', '_', '__' "
        "or '-', and must start and end with a letter or digit"
    )


def parse_image(ref: str) -> ImageRef:
    """Parse and normalise an image reference, or raise InvalidImageRef saying what is wrong with it."""
    if not ref:
        raise _invalid("the reference is empty")
    if any(c.isspace() for c in ref):
        raise _invalid("the reference contains whitespace")
    if "://" in ref:
        raise _invalid("a reference has no scheme: drop the 'http://' or 'https://' prefix")

    name_tag, at, digest = ref.partition("@")
    if at and "/" not in name_tag and "/" in digest:
        # "user:password@host/app": never echo it back; it may hold a password.
        raise _invalid("credentials do not belong in an image reference (user@host); configure registry credentials")
    if at:
        if not digest:
            raise _invalid("nothing follows '@'; a digest looks like sha256:<64 lowercase hex characters>")
        problem = digest_problem(digest)
        if problem:
            raise _invalid(problem)

    name, tag = name_tag, None
    colon = name_tag.rfind(":")
    if colon > name_tag.rfind("/"):
        name, tag = name_tag[:colon], name_tag[colon + 1 :]
        if not tag:
            raise _invalid("nothing follows ':'; a tag looks like 1.2 or v1-beta")
        if len(tag) > TAG_MAX:
            raise _invalid(f"the tag is {len(tag)} characters; at most {TAG_MAX} are allowed")
        if not _TAG_RE.fullmatch(tag):
            raise _invalid(
                f"tag {_show(tag)} may hold only letters, digits, '_', '.' and '-', and must not start with '.' or '-'"
            )

    if not name:
        raise _invalid("the repository name is empty")
    if len(name) > NAME_TOTAL_MAX:
        raise _invalid(f"the name is {len(name)} characters; at most {NAME_TOTAL_MAX} are allowed")
    components = name.split("/")
    if "" in components:
        where = "ends with '/'" if name.endswith("/") else "starts with '/'" if name.startswith("/") else "has '//'"
        raise _invalid(f"the name {where}: every path component must be non-empty")

    registry = DOCKER_HUB
    if len(components) > 1 and _is_domain(components[0]):
        registry = components.pop(0)
        if not _DOMAIN_RE.fullmatch(registry):
            raise _invalid(f"registry host {_show(registry)} is not a host name or IP address with an optional :port")
        if registry == "index.docker.io":
            registry = DOCKER_HUB
    for component in components:
        problem = _path_problem(component)
        if problem:
            raise _invalid(problem)
    if registry == DOCKER_HUB and len(components) == 1:
        components.insert(0, "library")

    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository="/".join(components), tag=tag, digest=digest or None)
