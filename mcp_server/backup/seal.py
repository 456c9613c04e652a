"""The sealed stream every backup archive is: authenticated encryption in fixed-size chunks, so an archive of
any size is written and read in constant memory, and one changed, dropped, reordered or missing byte is
detected (docs/decisions/0010-backup-format.md).

The construction is age's payload (STREAM, Hoang et al. 2015): a per-archive key derived by HKDF-SHA256 from
the backup key and a random 32-byte salt; ChaCha20-Poly1305 over 64 KiB chunks; the nonce of chunk i is i as
an 11-byte big-endian counter and one byte that is 1 on the last chunk only, so a truncated archive (at a chunk
boundary or not) fails to authenticate. The header names the key by an id (an HMAC of the key, so a backup
sealed with another key is told apart from a damaged one) and is authenticated by an HMAC under a second
derived key, and given as associated data to every chunk.

    header = magic "DMCPBAK1" | chunk size (u32) | key id (8) | salt (32) | header MAC (32)
    chunk  = ChaCha20-Poly1305(key, nonce(i, last), plaintext[i], aad=header)   (chunk size + 16 bytes)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"DMCPBAK1"
CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
TAG_SIZE = 16
_PREFIX = struct.Struct(">8sI8s32s")  # magic, chunk size, key id, salt
HEADER_SIZE = _PREFIX.size + 32
KEY_SETTING = "backup.key (DEPLOY_MCP_BACKUP__KEY, or backup.key_file)"


class BackupError(Exception):
    """A backup could not be made, read or restored; `str()` names what and the fix, never a secret."""


class BackupKeyError(BackupError):
    """The backup key is missing, malformed, or not the one the archive was sealed with."""


class BackupDamaged(BackupError):
    """The archive is not what was sealed: truncated, changed, or not a deploy-mcp backup at all."""


class BackupKey:
    """One 32-byte backup key and what is derived from it."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise BackupKeyError(f"{KEY_SETTING} must be 32 bytes in base64 (`openssl rand -base64 32`); "
                                 f"this one decodes to {len(raw)} bytes")
        self._raw = raw
        self.key_id = hmac.new(raw, b"deploy-mcp backup key id", hashlib.sha256).digest()[:8]

    def derive(self, salt: bytes) -> tuple[bytes, bytes]:
        """(payload key, header MAC key) of the archive with this salt."""
        okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=b"deploy-mcp backup v1").derive(self._raw)
        return okm[:32], okm[32:]


def parse_keys(text: str | None) -> list[BackupKey]:
    """The keys of the backup key setting (comma-separated, the sealing one first)."""
    if text is None or not text.strip():
        raise BackupKeyError(f"no backup key: set {KEY_SETTING} to 32 random bytes in base64 "
                             "(`openssl rand -base64 32`), and keep a copy away from the backups")
    keys = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            raw = base64.b64decode(part.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BackupKeyError(f"{KEY_SETTING} is not base64; generate one with `openssl rand -base64 32`") from e
        keys.append(BackupKey(raw))
    return keys


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Sealer:
    """Writes a sealed stream to `out`: `write()` any amount, then `close()` (which seals the last chunk; a
    stream never closed does not open). Holds one chunk in memory: a chunk is sealed once the next byte shows
    it is not the last."""

    def __init__(self, key: BackupKey, out: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        salt = os.urandom(32)
        payload_key, mac_key = key.derive(salt)
        prefix = _PREFIX.pack(MAGIC, chunk_size, key.key_id, salt)
        self._header = prefix + hmac.new(mac_key, prefix, hashlib.sha256).digest()
        self._aead = ChaCha20Poly1305(payload_key)
        self._out, self._chunk_size = out, chunk_size
        self._buf = bytearray()
        self._index = 0
        self.written = len(self._header)
        out.write(self._header)

    def _emit(self, data: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, last), data, self._header)
        self._out.write(sealed)
        self.written += len(sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) > self._chunk_size:
            self._emit(bytes(self._buf[: self._chunk_size]), last=False)
            del self._buf[: self._chunk_size]

    def close(self) -> None:
        self._emit(bytes(self._buf), last=True)
        self._buf.clear()


def _read_full(src: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        part = src.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def open_sealed(keys: list[BackupKey], src: BinaryIO) -> Iterator[bytes]:
    """The plaintext chunks of a sealed stream, each yielded only once authenticated. Raises BackupKeyError
    when no configured key sealed it, BackupDamaged when it is truncated, changed or no backup; a consumer
    must treat what it got before an error as untrusted."""
    header = _read_full(src, HEADER_SIZE)
    if len(header) < HEADER_SIZE or not header.startswith(MAGIC[:7]):
        raise BackupDamaged("this is not a deploy-mcp backup archive (no DMCPBAK header)")
    magic, chunk_size, key_id, salt = _PREFIX.unpack(header[: _PREFIX.size])
    if magic != MAGIC:
        raise BackupDamaged(f"archive format {magic[7:]!r} is not one this version reads (1); restore with a "
                            "newer deploy-mcp")
    key = next((k for k in keys if hmac.compare_digest(k.key_id, key_id)), None)
    if key is None:
        configured = ", ".join(k.key_id.hex() for k in keys)
        raise BackupKeyError(f"the archive was sealed with another backup key (key id {key_id.hex()}; configured: "
                             f"{configured}): set {KEY_SETTING} to the key that sealed it")
    payload_key, mac_key = key.derive(salt)
    if not hmac.compare_digest(hmac.new(mac_key, header[: _PREFIX.size], hashlib.sha256).digest(),
                               header[_PREFIX.size:]):
        raise BackupDamaged("the archive's header is damaged (its MAC does not match)")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise BackupDamaged(f"the archive's chunk size {chunk_size} is out of range")
    aead = ChaCha20Poly1305(payload_key)
    block = chunk_size + TAG_SIZE
    current = _read_full(src, block)
    if not current:
        raise BackupDamaged("the archive is truncated: it ends right after its header")
    index = 0
    while True:
        following = _read_full(src, block) if len(current) == block else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(index, last), current, header)
        except InvalidTag:
            if last:
                raise BackupDamaged(f"the archive is truncated or damaged at its end (chunk {index} does not "
                                    "authenticate as the last one)") from None
            raise BackupDamaged(f"the archive is damaged: chunk {index} does not authenticate") from None
        yield plain
        if last:
            return
        current, index = following, index + 1
