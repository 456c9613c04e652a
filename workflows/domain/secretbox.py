"""Secret values at rest: a Fernet token (AES-128-CBC + HMAC-SHA256) of the JSON map of one secrets version.

Shared by the tools (which encrypt what the agent sends) and the activities (which decrypt into the release's
Kubernetes Secret), so values never pass through Temporal's history or the audit log.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as e:
            raise SecretBoxError(
                "the secrets key is not a Fernet key (32 url-safe base64-encoded bytes); generate one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from e

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
