"""Where archives are kept: a directory (`file:///dir`, a local disk or a mounted volume) or an S3 bucket
(`s3://bucket/prefix`, through the MinIO client, which speaks plain S3 to AWS and to S3-compatible servers).

An archive becomes visible under its name only once complete: a directory gets `.<name>.partial`, fsynced and
renamed; S3 makes an object visible only when its PUT (or multipart upload) completes. Only names this module
gives (`deploy-mcp-<UTC time>.dmcpbak`) are listed or deleted, whatever else the place holds.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from mcp_server.backup.seal import BackupError
from mcp_server.settings import BackupSettings

SUFFIX = ".dmcpbak"
S3_PART_SIZE = 64 * 1024 * 1024  # an archive above this goes up as a multipart upload, in parts of this size
NAME = re.compile(r"^deploy-mcp-\d{8}T\d{6}\.\d{3}Z\.dmcpbak$")
PARTIAL = re.compile(r"^\.deploy-mcp-\d{8}T\d{6}\.\d{3}Z\.dmcpbak\.partial$")
STALE_PARTIAL_SECONDS = 6 * 3600  # a killed run's leftover (a run is cut at 2 h by the CronJob's deadline)


def archive_name(at: datetime) -> str:
    """Names sort by time: retention deletes the first ones."""
    return f"deploy-mcp-{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}Z{SUFFIX}"


@dataclass(frozen=True)
class StoredArchive:
    name: str
    size: int
    modified: datetime | None


class Target(Protocol):
    """A place archives are kept. `display` names it without credentials (for logs and `backup_runs`)."""

    display: str

    def staging(self, name: str) -> Path:
        """A local path to write the archive `name` to before `commit`."""
        ...

    def commit(self, name: str, staged: Path) -> None:
        """Make the staged archive visible under `name` (or raise, leaving nothing under that name)."""
        ...

    def discard(self, staged: Path) -> None: ...

    def local_copy(self, name: str) -> AbstractContextManager[Path]:
        """The archive as a local file for the duration (S3: downloaded to scratch, then removed)."""
        ...

    def list(self) -> list[StoredArchive]:
        """The archives, oldest first."""
        ...

    def delete(self, name: str) -> None: ...


class FileTarget:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.display = f"file://{directory}"

    def staging(self, name: str) -> Path:
        if not self.directory.is_dir():
            raise BackupError(f"backup target {self.display} is not a directory (create it, or mount the volume)")
        now = time.time()
        for p in self.directory.iterdir():  # else every killed run would leave a dump-sized file behind
            if PARTIAL.match(p.name) and now - p.stat().st_mtime > STALE_PARTIAL_SECONDS:
                p.unlink(missing_ok=True)
        return self.directory / f".{name}.partial"

    def commit(self, name: str, staged: Path) -> None:
        with staged.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(staged, self.directory / name)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a crash
        finally:
            os.close(fd)

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    @contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        path = self.directory / name
        if not path.is_file():
            raise BackupError(f"no backup {name} in {self.display}")
        yield path

    def list(self) -> list[StoredArchive]:
        if not self.directory.is_dir():
            raise BackupError(f"backup target {self.display} is not a directory")
        out = []
        for p in self.directory.iterdir():
            if NAME.match(p.name):
                st = p.stat()
                out.append(StoredArchive(p.name, st.st_size, datetime.fromtimestamp(st.st_mtime).astimezone()))
        return sorted(out, key=lambda a: a.name)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class S3Target:
    """A large archive goes up as a multipart upload of `S3_PART_SIZE` parts (aborted by the client on failure)."""

    def __init__(self, bucket: str, prefix: str, settings: BackupSettings, work_dir: Path | None,
                 part_size: int | None = None) -> None:
        from minio import Minio  # imported here: only an s3:// target needs it

        endpoint = urlsplit(settings.endpoint_url or "https://s3.amazonaws.com")
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise BackupError("backup.endpoint_url must be http(s)://host[:port], e.g. https://s3.eu-central-1.amazonaws.com")
        self.client = Minio(
            endpoint.netloc, secure=endpoint.scheme == "https", region=settings.region,
            access_key=settings.access_key_id,
            secret_key=settings.secret_access_key.get_secret_value() if settings.secret_access_key else None,
        )
        self.bucket, self.prefix = bucket, prefix
        self.display = f"s3://{bucket}/{prefix}" + (f" at {endpoint.netloc}" if settings.endpoint_url else "")
        self._work_dir, self._part_size = work_dir, part_size or S3_PART_SIZE

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _errors(self, doing: str) -> BackupError:
        return BackupError(f"S3 {doing} failed at {self.display}")

    def staging(self, name: str) -> Path:
        fd, path = tempfile.mkstemp(prefix=".deploy-mcp-backup-", suffix=SUFFIX, dir=self._work_dir)
        os.close(fd)
        return Path(path)

    def commit(self, name: str, staged: Path) -> None:
        from minio.error import MinioException

        try:
            self.client.fput_object(self.bucket, self._key(name), str(staged), part_size=self._part_size,
                                    content_type="application/octet-stream")
        except (MinioException, OSError) as e:
            raise BackupError(f"S3 upload to {self.display} failed: {_reason(e)}") from e
        finally:
            staged.unlink(missing_ok=True)

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    @contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        from minio.error import MinioException

        with tempfile.TemporaryDirectory(prefix="deploy-mcp-restore-", dir=self._work_dir) as d:
            path = Path(d) / name
            try:
                self.client.fget_object(self.bucket, self._key(name), str(path))
            except (MinioException, OSError) as e:
                raise BackupError(f"S3 download of {name} from {self.display} failed: {_reason(e)}") from e
            yield path

    def list(self) -> list[StoredArchive]:
        from minio.error import MinioException

        try:
            objects = list(self.client.list_objects(self.bucket, prefix=self.prefix))
        except (MinioException, OSError) as e:
            raise BackupError(f"S3 listing of {self.display} failed: {_reason(e)}") from e
        out = []
        for o in objects:
            name = (o.object_name or "")[len(self.prefix):]
            if NAME.match(name):
                out.append(StoredArchive(name, o.size or 0, o.last_modified))
        return sorted(out, key=lambda a: a.name)

    def delete(self, name: str) -> None:
        from minio.error import MinioException

        try:
            self.client.remove_object(self.bucket, self._key(name))
        except (MinioException, OSError) as e:
            raise BackupError(f"S3 delete of {name} at {self.display} failed: {_reason(e)}") from e


def _reason(e: Exception) -> str:
    """The S3 error code and message (never the request's signature or credentials)."""
    code = getattr(e, "code", None)
    message = getattr(e, "message", None)
    if code:
        return f"{code}: {message}" if message else str(code)
    return f"{type(e).__name__}: {e}"


def open_target(url: str, settings: BackupSettings) -> FileTarget | S3Target:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BackupError(f"backup target {url}: file URLs name a local path, file:///dir")
        return FileTarget(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc or "@" in parts.netloc:
            raise BackupError(f"backup target {url}: use s3://bucket/prefix (credentials go in backup.access_key_id "
                              "and backup.secret_access_key)")
        prefix = parts.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Target(parts.netloc, prefix, settings, settings.work_dir)
    raise BackupError(f"backup target {url}: must be file:///dir or s3://bucket/prefix (backup.target)")


def split_source(source: str) -> tuple[str, str | None]:
    """A restore source: an archive's full URL (target URL + name), or a bare name or `latest` in the
    configured target. Returns (target URL or "", name or None for latest)."""
    if "://" in source:
        base, _, name = source.rstrip("/").rpartition("/")
        if NAME.match(name):
            return base + "/", name
        return source, None  # a target: its latest
    return "", None if source == "latest" else source
