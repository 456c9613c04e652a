"""Every SecretBox ciphertext the store holds, for `deploy-mcp secrets rotate`: the secrets versions, the
tenants' git credentials and the Harbor robot secrets. Rotation goes table by table in batches, one
transaction per batch with the batch's rows locked, so a concurrent writer waits instead of being overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_server.store.pool import PgPool

# table -> its key columns; each has a `ciphertext bytea` column
CIPHERTEXT_TABLES: dict[str, tuple[str, ...]] = {
    "secret_versions": ("app_id", "version"),
    "git_credentials": ("tenant_id", "host"),
    "harbor_robots": ("tenant_id", "harbor_url"),
    "databases": ("id",),
    "push_connections": ("app_id",),
}


@dataclass
class RotationCount:
    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


Rotate = Callable[[bytes], bytes | None]
"""The new ciphertext, or None when the given one is under the current key already; raises ValueError when
no configured key opens it."""


class PgCiphertexts(PgPool):
    async def rotate_ciphertexts(self, rotate: Rotate, batch_size: int = 200) -> dict[str, RotationCount]:
        counts: dict[str, RotationCount] = {}
        for table, key in CIPHERTEXT_TABLES.items():
            count = counts[table] = RotationCount()
            cols = ", ".join(key)
            after: tuple[Any, ...] | None = None
            while True:
                async with self._transaction() as conn:
                    where = f"WHERE ({cols}) > ({', '.join(['%s'] * len(key))})" if after else ""
                    cur = await conn.execute(
                        f"SELECT {cols}, ciphertext FROM {table} {where} ORDER BY {cols} LIMIT %s FOR UPDATE",
                        (*(after or ()), batch_size))
                    rows = await cur.fetchall()
                    for row in rows:
                        ident = tuple(row[c] for c in key)
                        try:
                            new = rotate(bytes(row["ciphertext"]))
                        except ValueError:
                            count.unreadable.append("/".join(str(v) for v in ident))
                            continue
                        if new is None:
                            count.current += 1
                            continue
                        await conn.execute(
                            f"UPDATE {table} SET ciphertext = %s WHERE "
                            + " AND ".join(f"{c} = %s" for c in key), (new, *ident))
                        count.rotated += 1
                if len(rows) < batch_size:
                    break
                after = tuple(rows[-1][c] for c in key)
        return counts
