"""Platform records the backup and key-rotation tests seed through the store: a project with an app, two
secrets versions, git credentials and a Harbor robot, every secret under a given SecretBox."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from mcp_server.store import PgStore
from workflows.domain.secretbox import SecretBox


async def seed(store: PgStore, box: SecretBox) -> None:
    p = await store.ensure_project("acme", "shop")
    async with store.pool.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO apps (project_id, name, spec, hostname, status) VALUES (%s, 'web', %s, "
            "'web-shop-acme.apps.test', 'running') RETURNING id", (p.id, Jsonb({"port": 8080, "replicas": 2})))
        row = await cur.fetchone()
        assert row is not None
        app_id = row["id"]
    await store.add_secret_version(app_id, 0, ["DB_PASSWORD"], box.seal({"DB_PASSWORD": "hunter2"}), "alice")
    await store.add_secret_version(app_id, 1, ["API_KEY", "DB_PASSWORD"],
                                   box.seal({"DB_PASSWORD": "hunter3", "API_KEY": "sk-live-1"}), "alice")
    await store.set_git_credentials("acme", "github.com", "token", "x-access-token",
                                    box.seal({"secret": "ghp_secret"}), "alice")
    async with store.robot_slot("acme", "https://harbor.test") as slot:
        await slot.put("acme", "robot$acme+deploy-mcp", box.seal({"secret": "robot-password"}))


def ciphertexts(url: str) -> list[bytes]:
    with psycopg.connect(url) as conn:
        return [bytes(r[0]) for t in ("secret_versions", "git_credentials", "harbor_robots")
                for r in conn.execute(f"SELECT ciphertext FROM {t}").fetchall()]
