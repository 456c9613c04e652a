"""A Debian bookworm base image built from the Debian mirror alone, for machines that cannot pull from a registry.

`debootstrap --variant=minbase` with python3 (3.11), python3-venv, git and ca-certificates, upgraded from
bookworm-updates and bookworm-security, with apt lists, docs, man pages and locales stripped, then imported
with `buildah from scratch` into the testbed's buildah storage as `localhost/deploy-mcp-base:bookworm`. The
platform's Containerfile takes it as `--build-arg BASE=...`. The rootfs tarball is cached outside the
repository in `$TESTBED_CACHE/image-base/<key>.tar`, keyed by a hash of the recipe (suite, packages, strip
list), and the image carries that key as a label: a second run with the image present is one `buildah inspect`.

Run as root: `python -m mcp_server.devenv.image_base [--refresh]`. Part of the dev and test harness.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mcp_server.devenv.buildah import ImageBuildError, buildah, buildah_available, default_cache, image_label, run

BASE_REF = "localhost/deploy-mcp-base:bookworm"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")
# Paths removed from the rootfs (nothing at run time reads them); part of the cache key.
STRIP = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "var/cache/debconf/*-old",
    "var/log/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "tmp/*",
    "var/tmp/*",
)
RECIPE_VERSION = 1  # bump when the steps below change what ends up in the rootfs
KEY_LABEL = "org.deploy-mcp.base-key"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
# dpkg keeps not installing what STRIP removes, for images built FROM this base that apt-get install more
DPKG_EXCLUDES = """path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
"""
APT_NO_CACHE = 'APT::Keep-Downloaded-Packages "false";\nAcquire::Languages "none";\n'


@dataclass(frozen=True)
class Mirrors:
    """Where debootstrap and the upgrade fetch from: this machine's own apt configuration, when it has one."""

    debian: str = DEFAULT_MIRROR
    security: str = DEFAULT_SECURITY


def recipe_key(packages: tuple[str, ...] = PACKAGES, suite: str = SUITE) -> str:
    recipe = {"suite": suite, "packages": sorted(packages), "strip": list(STRIP), "version": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _source_entries(etc_apt: Path) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` entry in sources.list and sources.list.d/*.sources (deb822)."""
    entries: list[tuple[str, list[str]]] = []
    one_line = etc_apt / "sources.list"
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                entries.append((m.group(1), [m.group(2)]))
    parts = etc_apt / "sources.list.d"
    for f in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if "deb" in fields.get("types", "").split() and fields.get("uris"):
                for uri in fields["uris"].split():
                    entries.append((uri, fields.get("suites", "").split()))
    return entries


def host_mirrors(etc_apt: Path = Path("/etc/apt"), suite: str = SUITE) -> Mirrors:
    """The Debian and security mirrors this machine's apt uses for `suite`, else deb.debian.org."""
    debian = security = None
    for uri, suites in _source_entries(etc_apt):
        if suite in suites and debian is None:
            debian = uri.rstrip("/")
        if f"{suite}-security" in suites and security is None:
            security = uri.rstrip("/")
    return Mirrors(debian or DEFAULT_MIRROR, security or DEFAULT_SECURITY)


def ensure_debootstrap() -> None:
    """apt-get install debootstrap when it is missing (as the testbed's build.sh installs its packages)."""
    if shutil.which("debootstrap"):
        return
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    run("apt-get update", [*env_prefix, "apt-get", *lock, "update", "-qq"])
    install = ["install", "-y", "-qq", "--no-install-recommends", "debootstrap"]
    run("apt-get install debootstrap", [*env_prefix, "apt-get", *lock, *install])


def _unmount_under(root: Path) -> None:
    """Unmount whatever a failed debootstrap left mounted inside `root` (proc, sys), deepest first."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def _remove_tree(root: Path) -> None:
    if root.exists():
        _unmount_under(root)
        # --one-file-system: never follow into a mount that was left behind
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)


def _chroot(rootfs: Path, step: str, *argv: str) -> None:
    env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8"]
    run(step, ["chroot", str(rootfs), *env, *argv])


def build_rootfs(rootfs: Path, mirrors: Mirrors, packages: tuple[str, ...] = PACKAGES, suite: str = SUITE) -> None:
    """debootstrap `suite` into `rootfs`, upgrade it from -updates and -security, strip it."""
    include = f"--include={','.join(packages)}"
    argv = ["debootstrap", "--variant=minbase", include, "--components=main", suite, str(rootfs), mirrors.debian]
    run("debootstrap", argv)
    (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/apt/sources.list").write_text("")
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {mirrors.debian}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {mirrors.security}\nSuites: {suite}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    (rootfs / "etc/dpkg/dpkg.cfg.d/deploy-mcp-excludes").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/90deploy-mcp-no-cache").write_text(APT_NO_CACHE)
    # the chroot resolves the mirror's name with the host's resolver; a container runtime mounts its own later
    shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    try:
        _chroot(rootfs, "apt-get update (in the rootfs)", "apt-get", "update", "-qq")
        _chroot(rootfs, "apt-get upgrade (in the rootfs)", "apt-get", "upgrade", "-y", "-qq")
        _chroot(rootfs, "apt-get clean (in the rootfs)", "apt-get", "clean")
    finally:
        (rootfs / "etc/resolv.conf").write_text("")
    for pattern in STRIP:
        for p in rootfs.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def import_rootfs(cache: Path, tarball: Path, ref: str, key: str) -> None:
    """`buildah from scratch`, unpack `tarball` into its mount, configure, commit as `ref` labelled with `key`."""
    ctr = buildah(cache, "buildah from scratch", "from", "scratch").strip()
    try:
        mnt = Path(buildah(cache, "buildah mount", "mount", ctr).strip())
        try:
            run("unpack the rootfs", ["tar", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(mnt)])
        finally:
            buildah(cache, "buildah umount", "umount", ctr)
        buildah(
            cache,
            "buildah config",
            "config",
            "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env", "LANG=C.UTF-8",
            "--cmd", "/bin/bash",
            "--label", f"{KEY_LABEL}={key}",
            "--label", f"org.opencontainers.image.description=Debian {SUITE} minbase with {', '.join(PACKAGES)}",
            "--os", "linux",
            "--arch", _oci_arch(),
            ctr,
        )  # fmt: skip
        buildah(cache, "buildah commit", "commit", "-q", "--rm", ctr, ref)
    except BaseException:
        buildah(cache, "buildah rm", "rm", ctr, check=False)
        raise


def _oci_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def ensure_base_image(cache: Path | None = None, ref: str = BASE_REF, *, refresh: bool = False) -> str:
    """The base image `ref` in the testbed's buildah storage, built only when missing or its recipe changed.

    Returns `ref`. `refresh=True` debootstraps again (newer security updates) even when a tarball is cached.
    """
    why = buildah_available()
    if why:
        raise ImageBuildError(f"cannot build the base image: {why}")
    cache = cache or default_cache()
    key = recipe_key()
    if not refresh and image_label(cache, ref, KEY_LABEL) == key:
        return ref
    store = cache / "image-base"
    store.mkdir(parents=True, exist_ok=True)
    tarball = store / f"{SUITE}-{key}.tar"
    if refresh or not tarball.is_file():
        ensure_debootstrap()
        rootfs = store / f"{SUITE}-{key}.rootfs"
        _remove_tree(rootfs)
        try:
            build_rootfs(rootfs, host_mirrors())
            partial = tarball.with_suffix(".tar.partial")
            run("pack the rootfs", ["tar", "--numeric-owner", "--xattrs", "-cf", str(partial), "-C", str(rootfs), "."])
            partial.replace(tarball)
        finally:
            _remove_tree(rootfs)
        for old in store.glob(f"{SUITE}-*.tar"):  # one tarball per suite: older recipes are dead weight
            if old != tarball:
                old.unlink()
    import_rootfs(cache, tarball, ref, key)
    return ref


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mcp_server.devenv.image_base", description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=None, help="default: $TESTBED_CACHE or ~/.cache/deploy-mcp-testbed")
    p.add_argument("--tag", default=BASE_REF, help=f"image reference (default {BASE_REF})")
    p.add_argument("--refresh", action="store_true", help="debootstrap again even when a rootfs is cached")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    try:
        ref = ensure_base_image(args.cache, args.tag, refresh=args.refresh)
    except ImageBuildError as e:
        print(f"image base: {e}", file=sys.stderr)
        return 1
    print(f"image base: {ref} ready in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
