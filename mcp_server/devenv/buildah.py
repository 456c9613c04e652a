"""buildah with the testbed's own storage, so an image built here is the one the testbed pushes.

The testbed's `push-image.sh` runs `buildah --storage-driver vfs --root $TESTBED_CACHE/buildah/root
--runroot $TESTBED_CACHE/buildah/run` with `--isolation chroot` (no overlay module, no runc needed, the
system's container storage untouched); every call here uses the same flags. Needs root. Part of the dev and
test harness, not the product.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

BUILDAH_HINT = "install it with `apt-get install buildah` (Debian bookworm) and run as root"


class ImageBuildError(RuntimeError):
    """An image build step failed; the message names the step, the command and its output's tail."""


def default_cache() -> Path:
    """`$TESTBED_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/deploy-mcp-testbed` (as the testbed's common.sh)."""
    env = os.environ.get("TESTBED_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "deploy-mcp-testbed"


def buildah_argv(cache: Path) -> list[str]:
    """`buildah` plus the testbed's storage options (vfs under `cache/buildah`)."""
    return [
        "buildah",
        "--storage-driver",
        "vfs",
        "--root",
        str(cache / "buildah" / "root"),
        "--runroot",
        str(cache / "buildah" / "run"),
    ]


def buildah_available() -> str | None:
    """None when buildah can run here, else why not (for a skip reason or an error)."""
    if shutil.which("buildah") is None:
        return f"buildah is not installed: {BUILDAH_HINT}"
    if os.geteuid() != 0:
        return "buildah with the testbed's vfs storage needs root: run as root"
    return None


def run(step: str, argv: Sequence[str], *, check: bool = True, timeout: float = 3600) -> str:
    """Run `argv`, return its stdout; on failure raise ImageBuildError naming `step` with the output's tail."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ImageBuildError(f"{step} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def buildah(cache: Path, step: str, *args: str, check: bool = True, timeout: float = 3600) -> str:
    return run(step, [*buildah_argv(cache), *args], check=check, timeout=timeout)


def image_exists(cache: Path, ref: str) -> bool:
    proc = subprocess.run(
        [*buildah_argv(cache), "inspect", "--type", "image", ref], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def image_label(cache: Path, ref: str, label: str) -> str | None:
    """One label of a local image, or None when the image or the label is absent."""
    if not image_exists(cache, ref):
        return None
    # the whole inspect document: buildah 1.28's --format templates have no `json` function
    doc = json.loads(buildah(cache, "read image labels", "inspect", "--type", "image", ref))
    labels = ((doc.get("OCIv1") or {}).get("config") or {}).get("Labels") or {}
    value = labels.get(label)
    return str(value) if value is not None else None
