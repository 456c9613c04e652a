"""Secret values at rest: a Fernet token (AES-128-CBC + HMAC-SHA256) of the JSON map of one secrets version.

Shared by the tools (which encrypt what the agent sends) and the activities (which decrypt into the release's
Kubernetes Secret), so values never pass through Temporal's history or the audit log.

The key setting may hold several Fernet keys, comma-separated, the current one first (`MultiFernet`): new
ciphertext is written under the first, and ciphertext under any of them is read. That is how the key is
rotated: put a new key first, run `deploy-mcp secrets rotate` (re-encrypts every stored ciphertext under it),
then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NOT_A_KEY = ("the secrets key is not a Fernet key (32 url-safe base64-encoded bytes; several: comma-separated, "
              "the current one first); generate one with "
              "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`")


class SecretBoxError(Exception):
    pass


def split_keys(keys: str | bytes) -> list[str]:
    """The keys of a key setting: comma- (or newline-) separated, blanks ignored, order kept."""
    text = keys.decode() if isinstance(keys, bytes) else keys
    return [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        self._keys = split_keys(key)
        if not self._keys:
            raise SecretBoxError(_NOT_A_KEY)
        try:
            fernets = [Fernet(k) for k in self._keys]
            raw = base64.urlsafe_b64decode(self._keys[0])
        except ValueError as e:
            raise SecretBoxError(_NOT_A_KEY) from e
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)
        # a key of its own for digests, so no digest is ever computed under the encryption key itself. From the
        # current key: a digest stored before a rotation no longer matches (docs/decisions/0010-backup-format.md)
        self._digest_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                info=b"deploy-mcp secret digest").derive(raw)

    @property
    def keys(self) -> list[str]:
        """Every configured key, the current one first (what a backup carries, so a restore can decrypt)."""
        return list(self._keys)

    def digest(self, data: bytes) -> str:
        """HMAC-SHA256 of `data` under a key derived from the secrets key: equal values give equal digests,
        and a stored digest tells nothing about a value (nor lets one be guessed) without that key."""
        return hmac.new(self._digest_key, data, hashlib.sha256).hexdigest()

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, values: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def open(self, token: bytes) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(token))
        except InvalidToken as e:
            raise SecretBoxError("secret values cannot be decrypted with the configured secrets key") from e
        if not isinstance(data, dict):
            raise SecretBoxError("decrypted secret values are not a map")
        return {str(k): str(v) for k, v in data.items()}

    def is_current(self, token: bytes) -> bool:
        """Whether `token` is sealed under the current (first) key already."""
        try:
            self._current.decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """`token` re-encrypted under the current key (same values, a new timestamp and IV)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as e:
            raise SecretBoxError("a stored ciphertext cannot be decrypted with any configured secrets key") from e
