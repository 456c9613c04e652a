"""Build the platform's Postgres image (image/postgres/Containerfile) with buildah, in the testbed's storage.

Debian bookworm's `postgresql-15` on the self-built Debian base (`image_base`, debootstrapped once and cached
outside the repository), the same mechanism as the platform's own image: no registry is pulled from. The
result is tagged `ghcr.io/deploy-mcp/postgres:<major>` (plus `tag`) and carries the hash of its inputs as a
label, so a second build with nothing changed is one `buildah inspect`. `make image-postgres` /
`make image-postgres-push` call the command line below; pushing reuses `platform_image.push_image`. Needs root
and buildah; importing this module does nothing. Part of the dev and test harness.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from mcp_server.devenv.buildah import ImageBuildError, buildah, buildah_available, default_cache, image_label
from mcp_server.devenv.image_base import ensure_base_image
from mcp_server.devenv.platform_image import INPUTS_LABEL, REPO_ROOT, prune_superseded, push_image

CONTEXT = Path("image/postgres")
CONTAINERFILE = CONTEXT / "Containerfile"
IMAGE_NAME = "ghcr.io/deploy-mcp/postgres"
MAJORS = (15,)
"""The majors Debian bookworm packages (`postgresql-<major>`); a newer one needs another suite's base."""
DEFAULT_MAJOR = 15


def image_ref(major: int = DEFAULT_MAJOR) -> str:
    return f"{IMAGE_NAME}:{major}"


def build_args(base: str, major: int) -> list[str]:
    if major not in MAJORS:
        raise ImageBuildError(f"Postgres {major} is not packaged for bookworm: choose one of {list(MAJORS)}")
    return ["--build-arg", f"BASE={base}", "--build-arg", f"PG_MAJOR={major}"]


def inputs_hash(repo: Path, args: list[str]) -> str:
    """sha256 over the build context's files (names, modes, contents) and the build arguments."""
    h = hashlib.sha256("\0".join(args).encode())
    for f in sorted(p for p in (repo / CONTEXT).rglob("*") if p.is_file()):
        h.update(f"\0{f.relative_to(repo)}\0{f.stat().st_mode:o}\0".encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:32]


def bud_argv(repo: Path, args: list[str], digest: str, tags: list[str]) -> list[str]:
    """The `buildah bud` arguments: the context is image/postgres alone (the repository is not copied in)."""
    argv = ["bud", "-q", "--layers", "--force-rm", "--isolation", "chroot", "-f", str(repo / CONTAINERFILE), *args,
            "--label", f"{INPUTS_LABEL}={digest}"]
    for t in tags:
        argv += ["-t", t]
    return [*argv, str(repo / CONTEXT)]


def build_postgres_image(cache: Path | None = None, tag: str | None = None, *, major: int = DEFAULT_MAJOR,
                         base: str | None = None, repo: Path = REPO_ROOT) -> str:
    """Build the Postgres image of `major` and return its local reference (`tag` when given)."""
    why = buildah_available()
    if why:
        raise ImageBuildError(f"cannot build the Postgres image: {why}")
    cache = cache or default_cache()
    base = base or ensure_base_image(cache)
    args = build_args(base, major)
    tags = list(dict.fromkeys([image_ref(major), *([tag] if tag else [])]))
    digest = inputs_hash(repo, args)
    if image_label(cache, tags[0], INPUTS_LABEL) == digest:
        if len(tags) > 1:
            buildah(cache, "buildah tag", "tag", tags[0], *tags[1:])
        return tags[-1]
    buildah(cache, "buildah bud image/postgres/Containerfile", *bud_argv(repo, args, digest, tags))
    prune_superseded(cache)
    return tags[-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mcp_server.devenv.postgres_image", description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=None, help="default: $TESTBED_CACHE or ~/.cache/deploy-mcp-testbed")
    p.add_argument("--major", type=int, default=DEFAULT_MAJOR, choices=MAJORS, help="Postgres major version")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the image (and the self-built base when --base is not given)")
    b.add_argument("--base", default=None, help="base image (default: self-built localhost/deploy-mcp-base:bookworm)")
    b.add_argument("--tag", default=None, help=f"an extra tag besides {IMAGE_NAME}:<major>")
    u = sub.add_parser("push", help="push the built image to a registry")
    u.add_argument("dest", help="host[:port]/repo:tag, e.g. 127.0.0.1:5000/deploy-mcp-postgres:15")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        if args.cmd == "build":
            ref = build_postgres_image(args.cache, args.tag, major=args.major, base=args.base)
            print(f"postgres image: {ref} ready in {time.monotonic() - t0:.1f} s")
        else:
            digest = push_image(args.cache, image_ref(args.major), args.dest)
            print(f"postgres image: pushed {args.dest}@{digest} in {time.monotonic() - t0:.1f} s")
    except ImageBuildError as e:
        print(f"postgres image: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
