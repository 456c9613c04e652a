"""An app's secrets versions: the names in clear, the values only ever as SecretBox ciphertext. A release
pins one version; a new version is `base + 1` or a conflict, never a silent overwrite."""

from __future__ import annotations

from uuid import UUID

import psycopg

from mcp_server.store.pool import PgPool
from tools.ports import RecordConflict
from tools.records import SecretVersion


class PgSecretVersions(PgPool):
    async def current_secrets(self, app_id: UUID) -> SecretVersion:
        row = await self._one(
            "SELECT version, names, ciphertext FROM secret_versions WHERE app_id = %s ORDER BY version DESC LIMIT 1",
            app_id,
        )
        if row is None:
            return SecretVersion(version=0, names=[], ciphertext=None)
        return SecretVersion(version=row["version"], names=list(row["names"]), ciphertext=bytes(row["ciphertext"]))

    async def secret_ciphertext(self, app_id: UUID, version: int) -> bytes | None:
        row = await self._one(
            "SELECT ciphertext FROM secret_versions WHERE app_id = %s AND version = %s", app_id, version
        )
        return bytes(row["ciphertext"]) if row else None

    async def add_secret_version(
        self, app_id: UUID, base_version: int, names: list[str], ciphertext: bytes, created_by: str
    ) -> int:
        """Version `base_version + 1`; a concurrent writer that got there first makes this raise
        RecordConflict("secrets")."""
        try:
            await self._one(
                "INSERT INTO secret_versions (app_id, version, names, ciphertext, created_by) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING version",
                app_id, base_version + 1, sorted(names), ciphertext, created_by,
            )
        except psycopg.errors.UniqueViolation as e:
            raise RecordConflict("secrets", f"{app_id}@{base_version + 1}") from e
        return base_version + 1
