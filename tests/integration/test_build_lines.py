"""Build output reaches both logs: the store (what `get_build_logs` pages) and, when Loki is configured, Loki,
labelled tenant/project/app/deployment_id/commit_sha with stream=build — checked against the fake Loki (named
so) over real HTTP, with a real Postgres."""

from __future__ import annotations

import time

from mcp_server.store import PgStore
from tests.fakes.fake_loki import fake_loki_running
from workflows.activities.build import BuildLineSink
from workflows.adapters.loki import LokiClient
from workflows.domain.build_contract import BuildInput
from workflows.domain.masking import SecretMasker
from workflows.domain.names import app_hostname


async def test_build_lines_go_to_the_store_and_to_loki(store: PgStore) -> None:
    p = await store.ensure_project("acme", "shop")
    async with store.pool.connection() as conn:
        app_id = (await (await conn.execute(
            "INSERT INTO apps (project_id, name, spec, hostname) VALUES (%s, 'web', '{}', %s) RETURNING id",
            (p.id, app_hostname("web", "shop", "acme", "apps.test")))).fetchone())["id"]  # type: ignore[index]
    inp = BuildInput(tenant="acme", project="shop", app="web", app_id=app_id, deployment_id=None,
                     git_url="https://git.example.com/acme/web.git", commit_sha="b" * 40,
                     image_repo="registry.example.com/acme/web")
    started = await store.start_build(inp, "build/acme/shop/web/" + "b" * 40, "local-buildah")
    async with fake_loki_running() as loki_fake:
        client = LokiClient(loki_fake.url)
        try:
            sink = BuildLineSink(store, started.build_id, SecretMasker({"TOKEN": "s3cret-build-arg"}), inp, client)
            for line in ("STEP 1/2: FROM base", "STEP 2/2: RUN make token=s3cret-build-arg", "done"):
                await sink(line)
            await sink.flush()
            result = await client.query_range('{tenant="acme", stream="build"}', time.time_ns() - 60 * 10**9,
                                              time.time_ns() + 10**9, 100, "forward")
        finally:
            await client.aclose()
    stored = [r["line"] for r in await store.build_lines(started.build_id, -1, 10)]
    assert stored == ["STEP 1/2: FROM base", "STEP 2/2: RUN make token=[secret:TOKEN]", "done"]
    streams = result
    pushed = [line for s in streams for _, line in s.values]
    assert pushed == stored
    labels = streams[0].labels
    assert labels["stream"] == "build" and labels["commit_sha"] == "b" * 40 and labels["app"] == "web"
    assert labels["tenant"] == "acme" and labels["project"] == "shop"
