"""Build the platform's own image (image/Containerfile) with buildah, and push it, in the testbed's storage.

`build_platform_image(cache, tag)` builds on the self-built Debian base (`image_base`, made once and cached)
unless a `base` is given, tags the result `ghcr.io/deploy-mcp/deploy-mcp:<version>` plus `tag`, and returns
`tag`. `push_image(cache, ref, dest)` pushes it (plain http for a loopback registry such as the testbed's
127.0.0.1:5000) and returns the pushed manifest's digest. Both need root and buildah; importing this module
does nothing. `make image` / `make image-push` call the command line below. Part of the dev and test harness.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from mcp_server.devenv.buildah import (
    ImageBuildError,
    buildah,
    buildah_available,
    default_cache,
    image_exists,
    image_label,
)
from mcp_server.devenv.image_base import KEY_LABEL, ensure_base_image

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = Path("image/Containerfile")
IMAGE_NAME = "ghcr.io/deploy-mcp/deploy-mcp"
SOURCE_URL = "https://github.com/deploy-mcp/deploy-mcp"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# what image/Containerfile copies from the repository; the inputs hash covers exactly these
INPUTS = ("image/Containerfile", "pyproject.toml", "README.md", "mcp_server", "tools", "workflows", "prompts",
          "manifests")
INPUTS_LABEL = "org.deploy-mcp.inputs"
# the `deps` stage, tagged so that pruning keeps it (and its ancestors, which have children): the layer cache
# of the dependency install survives source changes
DEPS_REF = "localhost/deploy-mcp-deps:cache"
SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def inputs_hash(repo: Path, build_args: list[str]) -> str:
    """sha256 over the build's inputs (paths, modes and contents of INPUTS, the build arguments, the base's ID).

    buildah's own layer cache still has to materialize the build stage in vfs to check `COPY --from` (minutes
    here); an image already labelled with the same hash is reused without running `buildah bud` at all.
    """
    h = hashlib.sha256("\0".join(build_args).encode())
    for top in INPUTS:
        root = repo / top
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
        for f in files:
            if SKIPPED_PARTS.intersection(f.relative_to(repo).parts) or f.suffix == ".pyc":
                continue
            h.update(f"\0{f.relative_to(repo)}\0{f.lstat().st_mode:o}\0".encode())
            h.update(f.read_bytes() if not f.is_symlink() else str(f.readlink()).encode())
    return h.hexdigest()[:32]


def _image_id(cache: Path, ref: str) -> str:
    return buildah(cache, f"inspect {ref}", "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref).strip()


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts ($PIP_CERT, $SSL_CERT_FILE, Debian's system bundle), if any.

    Given to the build as the `pip-ca` secret: behind a TLS-intercepting proxy PyPI's certificate chains to a
    local CA that neither the base image's bundle nor pip's own certifi knows.
    """
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), str(SYSTEM_CA)):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def package_version(repo: Path = REPO_ROOT) -> str:
    with (repo / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def default_ref(repo: Path = REPO_ROOT) -> str:
    return f"{IMAGE_NAME}:{package_version(repo)}"


def build_platform_image(
    cache: Path | None = None,
    tag: str | None = None,
    *,
    base: str | None = None,
    repo: Path = REPO_ROOT,
    ca_bundle: Path | None = None,
) -> str:
    """Build image/Containerfile from `repo` and return the local reference `tag` (default the ghcr.io name).

    `base` defaults to the self-built `localhost/deploy-mcp-base:bookworm` (built first when missing). Nothing
    changed (same inputs hash): 0.2 s, no `buildah bud`. A source change rebuilds the wheel and the final
    layer (1.5-2.5 min here, vfs copies every layer); a pyproject.toml change reinstalls the dependencies.
    `ca_bundle` (default `host_ca_bundle()`) is the CA bundle pip trusts inside the build.
    """
    why = buildah_available()
    if why:
        raise ImageBuildError(f"cannot build the platform image: {why}")
    cache = cache or default_cache()
    base = base or ensure_base_image(cache)
    version = package_version(repo)
    tags = list(dict.fromkeys([f"{IMAGE_NAME}:{version}", *([tag] if tag else [])]))
    args = ["--build-arg", f"BASE={base}", "--build-arg", f"VERSION={version}", "--build-arg", f"SOURCE={SOURCE_URL}"]
    # a base not pulled yet counts by name (bud pulls it; the next build then sees its ID and builds once more)
    digest = inputs_hash(repo, [*args, _image_id(cache, base) if image_exists(cache, base) else base])
    if image_label(cache, tags[0], INPUTS_LABEL) == digest:
        if len(tags) > 1:  # moving a tag may leave the image it named dangling
            buildah(cache, "buildah tag", "tag", tags[0], *tags[1:])
            prune_superseded(cache)
        return tags[-1]
    argv = ["bud", "-q", "--layers", "--force-rm", "--isolation", "chroot", "-f", str(repo / CONTAINERFILE), *args]
    ca = ca_bundle or host_ca_bundle()
    if ca:
        argv += ["--secret", f"id=pip-ca,src={ca}"]
    buildah(cache, "buildah bud --target deps", *argv, "--target", "deps", "-t", DEPS_REF, str(repo))
    argv += ["--label", f"{INPUTS_LABEL}={digest}"]
    for t in tags:
        argv += ["-t", t]
    buildah(cache, "buildah bud image/Containerfile", *argv, str(repo))
    prune_superseded(cache)
    return tags[-1]


def prune_superseded(cache: Path) -> int:
    """Remove the untagged, childless images earlier builds on the self-built base left (vfs stores every layer
    as a full copy: ~1 GB per source change otherwise). Tagged images and their ancestors stay, so the layer
    cache of the current build does too. Returns how many images went."""
    removed = 0
    for _ in range(20):  # a removed leaf can leave its parent childless: a few passes
        filters = ["--filter", "dangling=true", "--filter", f"label={KEY_LABEL}"]  # on the self-built base
        ids = buildah(cache, "list dangling images", "images", "-q", *filters).split()
        if not ids:
            break
        buildah(cache, "remove superseded images", "rmi", *ids, check=False)
        removed += len(ids)
    return removed


def insecure_registry(dest: str) -> bool:
    """True when `dest` (host[:port]/repo:tag) names a loopback registry, the only ones pushed to over plain http."""
    host = dest.removeprefix("docker://").split("/", 1)[0]
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def push_image(cache: Path | None, ref: str, dest: str) -> str:
    """Push local image `ref` to `dest` (`host:port/repo:tag`) and return the pushed manifest digest (sha256:...)."""
    why = buildah_available()
    if why:
        raise ImageBuildError(f"cannot push {ref}: {why}")
    cache = cache or default_cache()
    dest = dest.removeprefix("docker://")
    with tempfile.TemporaryDirectory(prefix="deploy-mcp-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        buildah(
            cache,
            f"buildah push {ref} to {dest}",
            "push",
            "-q",
            f"--tls-verify={'false' if insecure_registry(dest) else 'true'}",
            "--digestfile",
            str(digest_file),
            ref,
            f"docker://{dest}",
        )
        return digest_file.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mcp_server.devenv.platform_image", description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=None, help="default: $TESTBED_CACHE or ~/.cache/deploy-mcp-testbed")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the image (and the self-built base when --base is not given)")
    b.add_argument("--base", default=None, help="base image (default: self-built localhost/deploy-mcp-base:bookworm)")
    b.add_argument("--tag", default=None, help="an extra tag besides ghcr.io/deploy-mcp/deploy-mcp:<version>")
    u = sub.add_parser("push", help="push a built image to a registry")
    u.add_argument("dest", help="host[:port]/repo:tag, e.g. 127.0.0.1:5000/deploy-mcp:0.1.0")
    u.add_argument("--image", default=None, help="local image (default ghcr.io/deploy-mcp/deploy-mcp:<version>)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        if args.cmd == "build":
            ref = build_platform_image(args.cache, args.tag, base=args.base)
            print(f"image: {ref} ready in {time.monotonic() - t0:.1f} s")
        else:
            digest = push_image(args.cache, args.image or default_ref(), args.dest)
            print(f"image: pushed {args.dest}@{digest} in {time.monotonic() - t0:.1f} s")
    except ImageBuildError as e:
        print(f"image: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
