"""Secret values at rest: a Fernet token (AES-128-CBC + HMAC-SHA256) of the JSON map of one secrets version.

Shared by the tools (which encrypt what the agent sends) and the activities (which decrypt into the release's
Kubernetes Secret), so values never pass through Temporal's history or the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
            raw = base64.urlsafe_b64decode(key)
        except ValueError as e:
            raise SecretBoxError(
                "the secrets key is not a Fernet key (32 url-safe base64-encoded bytes); generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from e
        # a key of its own for digests, so no digest is ever computed under the encryption key itself
        self._digest_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                info=b"deploy-mcp secret digest").derive(raw)

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
