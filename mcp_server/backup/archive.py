"""What a sealed backup holds, as a sequence of records inside the sealed stream: the secrets keys first, then
the pg_dump output in pieces, then the manifest (last, since it carries the dump's SHA-256 and size, known
only once the dump is written). Each record is a type byte, a 4-byte big-endian length and the payload.

Reading checks what the seal cannot: the records come in that order, nothing follows the manifest, and the
dump's digest and size are the manifest's. `verify` reads a whole archive and keeps nothing of the dump;
`extract_dump` reads it again into pg_restore, re-checking as it goes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

from pydantic import BaseModel, ValidationError

from mcp_server.backup.seal import BackupDamaged, BackupKey, Sealer, open_sealed

KEYS, DUMP, MANIFEST = b"K", b"D", b"M"
_FRAME = struct.Struct(">cI")
DUMP_PIECE = 1024 * 1024
FORMAT = 1


class Manifest(BaseModel):
    """The last record of an archive: what it is and how to check it."""

    format: int = FORMAT
    created_at: str
    """ISO 8601 UTC time the dump started."""
    platform_version: str
    schema_version: int
    """The highest store migration applied in the dumped database."""
    database: str
    server_version: str
    """Postgres server version the dump was taken from."""
    pg_dump_version: str
    dump_sha256: str
    dump_size: int
    secrets_key_count: int


class ArchiveWriter:
    """Writes the records of one archive through a `Sealer`."""

    def __init__(self, key: BackupKey, out: BinaryIO) -> None:
        self._sealer = Sealer(key, out)
        self._sha = hashlib.sha256()
        self.dump_size = 0

    def _record(self, kind: bytes, payload: bytes) -> None:
        self._sealer.write(_FRAME.pack(kind, len(payload)))
        self._sealer.write(payload)

    def add_keys(self, secrets_keys: list[str]) -> None:
        self._record(KEYS, json.dumps({"secrets_keys": secrets_keys}).encode())

    def add_dump(self, data: bytes) -> None:
        for start in range(0, len(data), DUMP_PIECE):
            piece = data[start: start + DUMP_PIECE]
            self._sha.update(piece)
            self.dump_size += len(piece)
            self._record(DUMP, piece)

    @property
    def dump_sha256(self) -> str:
        return self._sha.hexdigest()

    def finish(self, manifest: Manifest) -> int:
        """Write the manifest and seal the last chunk; the archive's size in bytes."""
        self._record(MANIFEST, manifest.model_dump_json().encode())
        self._sealer.close()
        return self._sealer.written


def _records(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bytes]]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= _FRAME.size:
            kind, length = _FRAME.unpack_from(buf)
            if len(buf) < _FRAME.size + length:
                break
            payload = bytes(buf[_FRAME.size: _FRAME.size + length])
            del buf[: _FRAME.size + length]
            yield kind, payload
    if buf:
        raise BackupDamaged("the archive ends inside a record")


@dataclass(frozen=True)
class Opened:
    """A verified archive: its manifest and the secrets keys it carries."""

    manifest: Manifest
    secrets_keys: list[str]


def read_archive(keys: list[BackupKey], src: BinaryIO, sink: IO[bytes] | None = None) -> Opened:
    """Read and check a whole archive, writing the dump to `sink` when given (else only hashing it)."""
    secrets_keys: list[str] | None = None
    manifest: Manifest | None = None
    sha, size = hashlib.sha256(), 0
    for kind, payload in _records(open_sealed(keys, src)):
        if manifest is not None:
            raise BackupDamaged("the archive has records after its manifest")
        if kind == KEYS and secrets_keys is None:
            try:
                secrets_keys = [str(k) for k in json.loads(payload)["secrets_keys"]]
            except (ValueError, KeyError, TypeError) as e:
                raise BackupDamaged("the archive's keys record is not readable") from e
        elif kind == DUMP and secrets_keys is not None:
            sha.update(payload)
            size += len(payload)
            if sink is not None:
                sink.write(payload)
        elif kind == MANIFEST and secrets_keys is not None:
            try:
                manifest = Manifest.model_validate_json(payload)
            except ValidationError as e:
                raise BackupDamaged("the archive's manifest is not readable by this version") from e
        else:
            raise BackupDamaged(f"the archive holds an unexpected record {kind!r} (a newer format?)")
    if manifest is None or secrets_keys is None:
        raise BackupDamaged("the archive has no manifest")
    if manifest.dump_sha256 != sha.hexdigest() or manifest.dump_size != size:
        raise BackupDamaged(f"the dump in the archive ({size} bytes) does not match its manifest's SHA-256 "
                            f"and size ({manifest.dump_size} bytes)")
    return Opened(manifest, secrets_keys)
