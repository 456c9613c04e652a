"""The sealed stream and the archive records of a backup (mcp_server.backup.seal, .archive): round trips at and
around chunk boundaries; a backup key is told apart from another; every kind of damage (a flipped bit in the
header, a chunk or a tag, chunks dropped, swapped or truncated at a boundary or inside one, bytes appended) is
detected; the dump's digest binds the manifest."""

from __future__ import annotations

import base64
import io
import os

import pytest

from mcp_server.backup.archive import ArchiveWriter, Manifest, read_archive
from mcp_server.backup.seal import (
    HEADER_SIZE,
    TAG_SIZE,
    BackupDamaged,
    BackupKey,
    BackupKeyError,
    Sealer,
    open_sealed,
    parse_keys,
)

KEY = BackupKey(b"k" * 32)
OTHER = BackupKey(b"o" * 32)
SMALL = 1024  # chunk size of these tests: many chunks from little data


def seal(data: bytes, key: BackupKey = KEY, chunk: int = SMALL, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    s = Sealer(key, out, chunk_size=chunk)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        s.write(data[i: i + step])
    s.close()
    return out.getvalue()


def unseal(blob: bytes, keys: list[BackupKey] | None = None) -> bytes:
    return b"".join(open_sealed(keys or [KEY], io.BytesIO(blob)))


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL, 5 * SMALL + 17])
def test_round_trip_around_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data)
    chunks = max(1, -(-size // SMALL))
    assert len(blob) == HEADER_SIZE + size + chunks * TAG_SIZE
    assert unseal(blob) == data


def test_two_seals_of_the_same_data_share_nothing() -> None:
    data = b"same" * 1000
    a, b = seal(data), seal(data)
    assert a[HEADER_SIZE:] != b[HEADER_SIZE:] and data[:64] not in a


def test_any_configured_key_opens_and_another_key_is_named() -> None:
    blob = seal(b"x" * 3000, key=OTHER)
    assert unseal(blob, [KEY, OTHER]) == b"x" * 3000
    with pytest.raises(BackupKeyError, match=r"sealed with another backup key .*backup\.key"):
        unseal(blob, [KEY])


def _damaged(blob: bytes, how: str) -> bytes:
    block = SMALL + TAG_SIZE
    b = bytearray(blob)
    if how == "header bit":
        b[12 + 8 + 3] ^= 1  # inside the salt: the header MAC no longer matches
    elif how == "chunk bit":
        b[HEADER_SIZE + block + 100] ^= 0x40
    elif how == "tag bit":
        b[HEADER_SIZE + block - 1] ^= 1
    elif how == "last chunk bit":
        b[-5] ^= 1
    elif how == "chunk dropped":
        del b[HEADER_SIZE + block: HEADER_SIZE + 2 * block]
    elif how == "chunks swapped":
        first, second = b[HEADER_SIZE: HEADER_SIZE + block], b[HEADER_SIZE + block: HEADER_SIZE + 2 * block]
        b[HEADER_SIZE: HEADER_SIZE + 2 * block] = second + first
    elif how == "truncated at a chunk boundary":
        del b[HEADER_SIZE + 2 * block:]
    elif how == "truncated inside a chunk":
        del b[-300:]
    elif how == "bytes appended":
        b += b"\0" * 20
    elif how == "header only":
        del b[HEADER_SIZE:]
    return bytes(b)


@pytest.mark.parametrize("how", ["header bit", "chunk bit", "tag bit", "last chunk bit", "chunk dropped",
                                 "chunks swapped", "truncated at a chunk boundary", "truncated inside a chunk",
                                 "bytes appended", "header only"])
def test_damage_is_detected(how: str) -> None:
    blob = seal(os.urandom(4 * SMALL + 500))
    with pytest.raises(BackupDamaged):
        unseal(_damaged(blob, how))


def test_not_an_archive() -> None:
    with pytest.raises(BackupDamaged, match="not a deploy-mcp backup"):
        unseal(b"PGDMP" + b"\0" * 200)


def test_backup_key_setting_is_checked() -> None:
    good = base64.b64encode(b"\1" * 32).decode()
    urlsafe = base64.urlsafe_b64encode(b"\xff" * 32).decode()
    assert len(parse_keys(f" {good} ,\n{urlsafe}")) == 2
    with pytest.raises(BackupKeyError, match=r"no backup key: set backup\.key"):
        parse_keys(None)
    with pytest.raises(BackupKeyError, match="32 bytes"):
        parse_keys(base64.b64encode(b"short").decode())
    with pytest.raises(BackupKeyError, match="not base64"):
        parse_keys("correct horse battery staple!")


def _archive(dump: bytes, manifest_sha: str | None = None) -> bytes:
    out = io.BytesIO()
    w = ArchiveWriter(KEY, out)
    w.add_keys(["k1", "k2"])
    w.add_dump(dump)
    w.finish(Manifest(created_at="2026-12-02T00:00:00+00:00", platform_version="0.1.0", schema_version=9,
                      database="db", server_version="18.6", pg_dump_version="pg_dump 18.6",
                      dump_sha256=manifest_sha or w.dump_sha256, dump_size=w.dump_size, secrets_key_count=2))
    return out.getvalue()


def test_archive_round_trip_writes_the_dump_to_the_sink() -> None:
    dump = os.urandom(3 * 1024 * 1024 + 5)
    sink = io.BytesIO()
    opened = read_archive([KEY], io.BytesIO(_archive(dump)), sink=sink)
    assert sink.getvalue() == dump and opened.secrets_keys == ["k1", "k2"]
    assert opened.manifest.dump_size == len(dump) and opened.manifest.schema_version == 9


def test_a_manifest_that_does_not_match_its_dump_is_refused() -> None:
    with pytest.raises(BackupDamaged, match="does not match its manifest"):
        read_archive([KEY], io.BytesIO(_archive(b"dump bytes", manifest_sha="0" * 64)))
