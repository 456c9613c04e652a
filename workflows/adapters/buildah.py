"""The local builder: build a checked-out repository's Dockerfile with buildah and push the image, for
development and tests on a machine without BuildKit (production builds run as a Kubernetes Job, see
`workflows.render.build_job`).

`buildah --storage-driver vfs --root <storage>/root --runroot <storage>/run bud --isolation chroot --layers`
then `buildah push --digestfile`. Storage lives under the caller's `storage_root` (vfs: no kernel overlay
needed; chroot isolation: no runc), and buildah reads no configuration of the machine's: registries.conf,
storage.conf and the auth file are written there too. Every output line is handed to `on_line` as it comes,
with buildah's `STEP n/m: ...` markers, so a failure names the step that was running. Needs root (chroot
isolation) and buildah on PATH.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from workflows.adapters.errors import AdapterError
from workflows.domain.images import digest_problem, parse_image

logger = logging.getLogger(__name__)

LineSink = Callable[[str], Awaitable[None]]
DOCKERFILES = ("Dockerfile", "Containerfile")
_STEP = re.compile(r"^STEP \d+(?:/\d+)?: ")
_FAILED_AT = re.compile(r'building at STEP "(.*?)"')
_LINE_LIMIT = 1 << 20


class BuildError(AdapterError):
    """A build could not produce an image. `retryable` says whether the same build may succeed later."""


class BuilderMissing(BuildError):
    """The builder this repository needs is not available on this machine."""


class BuildFailed(BuildError):
    """The build ran and failed: `step` is the step that was running ("STEP 3/5: RUN make"), `last_lines` the
    end of its output."""

    def __init__(
        self, message: str, *, step: str | None = None, last_lines: Sequence[str] = (), exit_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.step = step
        self.last_lines = list(last_lines)
        self.exit_code = exit_code


class BuildTimeout(BuildFailed):
    """The build did not finish in time and was stopped."""


class PushFailed(BuildError):
    """The image was built but could not be pushed."""

    def __init__(self, message: str, *, last_lines: Sequence[str] = (), retryable: bool = True) -> None:
        super().__init__(message)
        self.last_lines = list(last_lines)
        self.retryable = retryable


@dataclass(frozen=True)
class BuildResult:
    """A pushed image: `image` the tag pushed, `digest` the manifest digest the registry stores."""

    digest: str
    image: str
    builder: Literal["dockerfile", "railpack"] = "dockerfile"
    dockerfile: str = "Dockerfile"
    log_lines: int = field(default=0, compare=False)

    @property
    def pinned(self) -> str:
        """`<registry>/<repository>@<digest>`."""
        return parse_image(self.image).pinned(self.digest)


def _inside(base: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(base.resolve())
    except ValueError:
        return False
    return True


def build_dir(checkout_dir: Path, subdir: str) -> Path:
    """`checkout_dir/subdir`, refused when it leaves the checkout (.., absolute, a symlink pointing out)."""
    sub = subdir.strip("/")
    if sub and (any(part in ("", ".", "..") for part in sub.split("/")) or Path(sub).is_absolute()):
        raise BuildFailed(f"subdir {subdir!r} must be a relative path inside the repository, without '..'")
    directory = checkout_dir / sub if sub else checkout_dir
    if not _inside(checkout_dir, directory):
        raise BuildFailed(f"subdir {subdir!r} leaves the repository (through a symlink)")
    if not directory.is_dir():
        raise BuildFailed(f"subdir {subdir!r} is not a directory of the repository")
    return directory


def find_dockerfile(directory: Path, checkout_dir: Path) -> Path | None:
    for name in DOCKERFILES:
        candidate = directory / name
        if candidate.is_file() or candidate.is_symlink():
            if not _inside(checkout_dir, candidate) or not candidate.is_file():
                raise BuildFailed(f"{name} is a symlink that leaves the repository; make it a regular file")
            return candidate
    return None


@dataclass
class _Run:
    returncode: int
    tail: deque[str]
    step: str | None
    lines: int


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _stream(argv: Sequence[str], env: dict[str, str], on_line: LineSink, *, tail: int, timeout: float) -> _Run:
    """Run argv, stdout and stderr merged, handing each line to on_line; kill the process group on timeout or
    cancellation."""
    logger.debug("running %s", " ".join(argv))
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        limit=_LINE_LIMIT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    last: deque[str] = deque(maxlen=tail)
    state = _Run(-1, last, None, 0)

    async def pump() -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line longer than the limit: take what there is
                raw = await proc.stdout.read(_LINE_LIMIT)
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\r\n")
            state.lines += 1
            if _STEP.match(line):
                state.step = line
            last.append(line)
            await on_line(line)
        state.returncode = await proc.wait()

    try:
        await asyncio.wait_for(pump(), timeout)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        state.returncode = -1
        raise BuildTimeout(
            f"the build did not finish within {timeout:g} s and was stopped"
            + (f" during {state.step}" if state.step else ""),
            step=state.step,
            last_lines=list(last),
        ) from None
    except BaseException:
        _kill(proc)
        await proc.wait()
        raise
    return state


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _configure(storage_root: Path, registry: str, insecure: bool, auth: tuple[str, str] | None) -> dict[str, str]:
    """The environment of buildah: its own storage.conf, registries.conf and auth file under storage_root."""
    for sub in ("root", "run", "home", "tmp", "config"):
        (storage_root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    config = storage_root / "config"
    (config / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{storage_root / "run"}"\ngraphroot = "{storage_root / "root"}"\n'
    )
    registries = 'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n'
    if insecure:
        registries += f'\n[[registry]]\nlocation = "{registry}"\ninsecure = true\n'
    (config / "registries.conf").write_text(registries)
    auths: dict[str, object] = {}
    if auth is not None:
        encoded = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        auths[registry] = {"auth": encoded}
    _write_private(config / "auth.json", json.dumps({"auths": auths}))
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(storage_root / "home"),
        "TMPDIR": str(storage_root / "tmp"),
        "LANG": "C",
        "LC_ALL": "C",
        "BUILDAH_ISOLATION": "chroot",
        "CONTAINERS_STORAGE_CONF": str(config / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(config / "registries.conf"),
        "REGISTRY_AUTH_FILE": str(config / "auth.json"),
    }


def _choose_builder(
    checkout_dir: Path, subdir: str, builder: Literal["auto", "dockerfile", "railpack"], buildah: str
) -> tuple[Path, Path]:
    """(build directory, Dockerfile), or BuilderMissing saying what this machine lacks."""
    directory = build_dir(checkout_dir, subdir)
    dockerfile = find_dockerfile(directory, checkout_dir) if builder != "railpack" else None
    where = subdir or "the repository root"
    if dockerfile is None:
        if builder == "dockerfile":
            raise BuilderMissing(
                f"builder 'dockerfile' was asked for but {where} has no Dockerfile; add one or let the platform use "
                "Railpack"
            )
        if shutil.which("railpack") is None:
            raise BuilderMissing(
                "railpack is not installed on this machine; add a Dockerfile to the repo or pass builder='dockerfile' "
                f"with a Dockerfile in {where} (the local builder builds Dockerfiles with buildah; Railpack builds run "
                "on the cluster's BuildKit)"
            )
        raise BuilderMissing(
            "this repository has no Dockerfile, so it needs a Railpack build, which runs on BuildKit; the local "
            "builder only builds Dockerfiles: add a Dockerfile or deploy to a cluster with BuildKit"
        )
    if shutil.which(buildah) is None and not Path(buildah).is_file():
        raise BuilderMissing(f"{buildah} is not installed on this machine; install buildah to build locally")
    return directory, dockerfile


def _read_digest(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
    finally:
        path.unlink(missing_ok=True)


async def build_and_push(
    checkout_dir: Path,
    subdir: str,
    image: str,
    *,
    registry_insecure: bool,
    storage_root: Path,
    on_line: LineSink,
    builder: Literal["auto", "dockerfile", "railpack"] = "auto",
    registry_auth: tuple[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
    buildah: str = "buildah",
    tail_lines: int = 40,
) -> BuildResult:
    """Build `checkout_dir/subdir` and push it as `image` (registry/repository:tag); return its digest.

    A Dockerfile (or Containerfile) in the directory is built with buildah. Without one the repository needs
    Railpack, which builds through BuildKit: this local builder raises BuilderMissing. A failing step raises
    BuildFailed naming it, with the last lines of its output; a failing push raises PushFailed.
    `secrets` (name -> value) are build secrets: `RUN --mount=type=secret,id=NAME` reads one, as with BuildKit;
    they are in 0600 files only while buildah runs, never on its command line or in a layer.
    """
    ref = parse_image(image)
    if ref.digest is not None or ref.tag is None:
        raise ValueError(f"image {image!r} must name a tag to push, not a digest")
    checkout_dir = Path(checkout_dir)
    directory, dockerfile = _choose_builder(checkout_dir, subdir, builder, buildah)
    storage_root = Path(storage_root)
    env = _configure(storage_root, ref.registry, registry_insecure, registry_auth)
    base = [buildah, "--storage-driver", "vfs", "--root", str(storage_root / "root")]
    base += ["--runroot", str(storage_root / "run")]
    bud = [*base, "bud", "--isolation", "chroot", "--layers", "-f", str(dockerfile), "-t", image]
    secret_dir = storage_root / "tmp" / f"secrets-{uuid.uuid4().hex}"
    try:
        if secrets:
            secret_dir.mkdir(mode=0o700)
            for i, (name, value) in enumerate(sorted(secrets.items())):
                _write_private(secret_dir / str(i), value)
                bud += ["--secret", f"id={name},src={secret_dir / str(i)}"]
        built = await _stream([*bud, str(directory)], env, on_line, tail=tail_lines, timeout=timeout)
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
    if built.returncode != 0:
        step = built.step
        for line in reversed(built.tail):
            match = _FAILED_AT.search(line)
            if match:
                if step is None or not step.endswith(match.group(1)):
                    step = match.group(1)
                break
        where = f"at {step}" if step else "before its first step"
        last = next((line for line in reversed(built.tail) if line.strip()), "")
        raise BuildFailed(
            f"the build failed {where}: {last[:300]}",
            step=step,
            last_lines=list(built.tail),
            exit_code=built.returncode,
        )

    digest_file = storage_root / "tmp" / f"digest-{uuid.uuid4().hex}"
    push = [*base, "push"]
    if registry_insecure:
        push.append("--tls-verify=false")
    push += ["--digestfile", str(digest_file), image, f"docker://{image}"]
    try:
        pushed = await _stream(push, env, on_line, tail=tail_lines, timeout=timeout)
    finally:
        digest = _read_digest(digest_file)
    if pushed.returncode != 0:
        text = "\n".join(pushed.tail).lower()
        denied = any(m in text for m in ("unauthorized", "denied", "authentication required", "403 forbidden"))
        last = next((line for line in reversed(pushed.tail) if line.strip()), "")
        hint = "the registry refused the credentials" if denied else "try again later"
        raise PushFailed(
            f"pushing {image} failed ({hint}): {last[:300]}", last_lines=list(pushed.tail), retryable=not denied
        )
    problem = digest_problem(digest) if digest else "buildah wrote no digest file"
    if problem:
        raise PushFailed(f"pushing {image} gave no usable digest: {problem}", retryable=False)
    return BuildResult(
        digest=digest,
        image=image,
        dockerfile=str(dockerfile.relative_to(checkout_dir)),
        log_lines=built.lines + pushed.lines,
    )
