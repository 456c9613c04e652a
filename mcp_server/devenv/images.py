"""Synthetic but runnable OCI images, built in memory and pushed with the distribution API alone.

No buildah or docker: one gzip'ed tar layer (deterministic, so the same files give the same digest), an OCI
image config and an OCI image manifest, uploaded with POST + monolithic PUT and a manifest PUT. With
`busybox_web_files` the image runs `["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]` and serves the
given HTML. Test registries are on loopback, so this speaks plain http. Part of the dev and test harness
(tests and bench/ push their apps with it), not the product.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import struct
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from mcp_server.devenv.processes import ManagedProcess, free_port

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
BUSYBOX = Path("/bin/busybox")
BUSYBOX_HTTPD = ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]



@dataclass(frozen=True)
class Symlink:
    """An image entry that is a symbolic link to `target` (busybox applets: /bin/sh -> busybox)."""

    target: str


FileSpec = bytes | tuple[bytes, int] | Symlink


class PushError(RuntimeError):
    """The registry refused part of a push; the message has the step, the status and the registry's answer."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class OciImage:
    """An image ready to push: the blobs and the manifest, with their digests."""

    layer: bytes  # gzip'ed tar
    diff_id: str  # sha256 of the uncompressed tar
    config: bytes
    manifest: bytes

    @property
    def layer_digest(self) -> str:
        return sha256_digest(self.layer)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def _clean_path(path: str) -> str:
    clean = posixpath.normpath(path.lstrip("/"))
    if clean in ("", ".") or clean.startswith("../") or clean == "..":
        raise ValueError(f"image file path {path!r} must name a file inside the image")
    return clean


def build_layer(files: Mapping[str, FileSpec]) -> tuple[bytes, str]:
    """(gzip'ed tar, diff_id): regular files with their modes (default 0o644) and their parent directories
    (0o755), owned by root, mtime 0, in sorted order, so the same files always give the same bytes."""
    entries: dict[str, tuple[bytes, int] | Symlink | None] = {}  # path -> (data, mode), None for a directory
    for path, spec in files.items():
        clean = _clean_path(path)
        entries[clean] = (spec, 0o644) if isinstance(spec, bytes) else spec
        parent = posixpath.dirname(clean)
        while parent:
            if entries.get(parent) is not None:
                raise ValueError(f"image file path {parent!r} is both a file and the directory of {clean!r}")
            entries[parent] = None
            parent = posixpath.dirname(parent)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            entry = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(entry, Symlink):
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.size = len(entry[0])
                info.mode = entry[1]
                tar.addfile(info, io.BytesIO(entry[0]))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), sha256_digest(tar_bytes)


def build_image(
    files: Mapping[str, FileSpec],
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    exposed_ports: Iterable[int] = (),
    architecture: str = "amd64",
) -> OciImage:
    """The layer, the OCI image config and the OCI image manifest of a one-layer image, in memory."""
    layer, diff_id = build_layer(files)
    run: dict[str, object] = {}
    if entrypoint is not None:
        run["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        run["Cmd"] = list(cmd)
    if env:
        run["Env"] = [f"{k}={v}" for k, v in env.items()]
    if user is not None:
        run["User"] = user
    ports = sorted(set(exposed_ports))
    if ports:
        run["ExposedPorts"] = {f"{p}/tcp": {} for p in ports}
    config = _json(
        {
            "created": "1970-01-01T00:00:00Z",
            "architecture": architecture,
            "os": "linux",
            "config": run,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mcp_server.devenv.images"}],
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(layer), "size": len(layer)}],
        }
    )
    return OciImage(layer=layer, diff_id=diff_id, config=config, manifest=manifest)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _check(response: httpx.Response, expected: Iterable[int], step: str) -> None:
    if response.status_code not in set(expected):
        raise PushError(f"{step}: HTTP {response.status_code} from {response.request.url}: {response.text[:500]}")


async def upload_blob(client: httpx.AsyncClient, base: str, repository: str, data: bytes) -> str:
    """Upload one blob unless the registry has it: POST an upload session, then one monolithic PUT."""
    digest = sha256_digest(data)
    head = await client.head(f"{base}/v2/{repository}/blobs/{digest}")
    if head.status_code == 200:
        return digest
    start = await client.post(f"{base}/v2/{repository}/blobs/uploads/")
    _check(start, (202,), f"start the upload of {digest}")
    location = start.headers.get("Location")
    if not location:
        raise PushError(f"start the upload of {digest}: the registry sent no Location header")
    url = start.request.url.join(location).copy_merge_params({"digest": digest})
    put = await client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    _check(put, (201,), f"upload {digest}")
    return digest


async def push_built_image(
    registry: str, repository: str, tags: Iterable[str], image: OciImage, client: httpx.AsyncClient
) -> str:
    """Push the blobs of `image`, then its manifest under each tag; returns the manifest digest."""
    base = f"http://{registry}"
    await upload_blob(client, base, repository, image.layer)
    await upload_blob(client, base, repository, image.config)
    for tag in tags:
        put = await client.put(
            f"{base}/v2/{repository}/manifests/{tag}", content=image.manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        _check(put, (201,), f"put the manifest {repository}:{tag}")
        answered = put.headers.get("Docker-Content-Digest")
        if answered and answered != image.digest:
            raise PushError(
                f"put the manifest {repository}:{tag}: registry says {answered}, we computed {image.digest}"
            )
    return image.digest


async def push_image(
    registry: str,
    repository: str,
    tag: str,
    files: Mapping[str, FileSpec],
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    exposed_ports: Iterable[int] = (),
    client: httpx.AsyncClient | None = None,
) -> str:
    """Build a one-layer image from `files` (path -> bytes, or (bytes, mode)) and push it to
    `http://<registry>/<repository>:<tag>`; returns the manifest digest ("sha256:...")."""
    image = build_image(files, entrypoint=entrypoint, cmd=cmd, env=env, user=user, exposed_ports=exposed_ports)
    if client is not None:
        return await push_built_image(registry, repository, [tag], image, client)
    async with httpx.AsyncClient(timeout=30.0) as own:
        return await push_built_image(registry, repository, [tag], image, own)


def _elf_is_static(binary: bytes) -> bool:
    """True for a 64-bit little-endian ELF without a program interpreter (PT_INTERP): it runs in an empty
    image."""
    if binary[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", binary, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", binary, 0x36)
    return all(struct.unpack_from("<I", binary, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def busybox_web_files(html: str) -> dict[str, FileSpec]:
    """Files of an image that serves `html` with busybox httpd: run it with `BUSYBOX_HTTPD` as entrypoint."""
    hint = "test images need a static busybox: install it with `apt install busybox-static`"
    try:
        busybox = BUSYBOX.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{BUSYBOX} is missing; {hint}") from None
    if not _elf_is_static(busybox):
        raise RuntimeError(f"{BUSYBOX} is not a static 64-bit binary, so it cannot run alone in an image; {hint}")
    return {"busybox": (busybox, 0o755), "www/index.html": html.encode()}


REGISTRY_BIN = "/usr/bin/docker-registry"


def _v2_answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def docker_registry(run_dir: Path, *, delete: bool = False) -> Iterator[str]:
    """A real docker-registry (Debian's) on 127.0.0.1:<free port>, its data under `run_dir`, stopped by PID
    afterwards; yields its host:port. `delete`: the registry accepts DELETE of manifests and blobs."""
    port = free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {run_dir / 'data'}\n"
        + ("  delete:\n    enabled: true\n" if delete else "")
        + f"http:\n  addr: 127.0.0.1:{port}\n  secret: test-only-not-a-secret\n"
    )
    proc = ManagedProcess(
        "docker-registry", [REGISTRY_BIN, "serve", str(config)], run_dir,
        install_hint="Install it with `apt install docker-registry`.",
    )
    proc.start()
    try:
        proc.wait_ready(lambda: _v2_answers(f"http://127.0.0.1:{port}/v2/"), timeout=30, what="answering /v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.stop()
