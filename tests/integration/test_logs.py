"""The log tools through an MCP client (`auto`, and `legacy` where marked) on a real Postgres and a fake Loki
served over real HTTP (tests/fakes/fake_loki.py), pre-loaded with 10,000 lines of one app, 1,000 of them in a
single nanosecond across three pods:

- paging through all 10,000 lines, backward and forward, returns each exactly once and in order;
- contains, regex, level, pod and deployment_id filters return exactly the matching lines;
- the lines cap and the 64 KiB bytes cap hold, long lines are cut at 4 KiB with the marker, and the cursor
  continues right after the last line returned; a cursor for other filters or a mangled one is refused;
- another tenant's app is NotFound and Loki never sees a query with another tenant's labels; the same app
  name in two tenants never mixes; label values come only from the caller's app;
- an unreachable Loki, a failing Loki and a missing log store are clear Unavailable errors, audited;
- secret values are masked, and a `contains` guess at a secret value matches nothing;
- follow_seconds returns lines pushed while following (masked) and sends them as progress notifications;
- the Loki client itself: nanosecond integer parameters, direction and limit as documented, X-Scope-OrgID,
  Loki's 400 message surfaced as LogQueryError, 401 as LogStoreUnavailable.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from mcp.client import Client
from psycopg.types.json import Jsonb

import tools.logs
from mcp_server.devenv.processes import free_port
from mcp_server.server import DeployMCP, ServerDeps, build_server
from mcp_server.store import PgStore
from tests.fakes.fake_loki import FakeLoki, fake_loki_running
from tools.context import PlatformConfig, Principal
from tools.ports import LogStore
from tools.records import NewRelease
from workflows.adapters.loki import LokiClient, LokiLogStore, LokiStream
from workflows.domain.log_paging import Direction, LogLine, LogQueryError, LogStoreUnavailable, in_order
from workflows.domain.logql import line_filter
from workflows.domain.masking import utf8_size
from workflows.domain.names import app_hostname
from workflows.domain.secretbox import SecretBox

ALL = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write", "logs:read", "audit:read"})
SECRET = "sk_live_7Qe9xLmN2pVb"
BOX = SecretBox(SecretBox.generate_key())
PODS = {"web-r1-a": 0, "web-r1-b": 0, "web-r2-a": 1}  # pod -> index of its release
N = 10_000


async def seed_app(store: PgStore, tenant: str, project: str, app: str) -> None:
    p = await store.ensure_project(tenant, project)
    async with store.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO apps (project_id, name, spec, hostname, status) VALUES (%s, %s, %s, %s, 'running')",
            (p.id, app, Jsonb({"port": 8080, "replicas": 1, "env": {"LOG_LEVEL": "debug"}}),
             app_hostname(app, project, tenant, "apps.test")),
        )


async def seed_releases(store: PgStore, tenant: str, project: str, app: str, n: int) -> list[UUID]:
    ids = []
    for i in range(1, n + 1):
        claim = await store.create_release(NewRelease(
            tenant=tenant, project=project, app=app, hostname=app_hostname(app, project, tenant, "apps.test"),
            create=False, config={"port": 8080}, source={"image": "registry.test/web:1"}, image="registry.test/web",
            image_digest=f"sha256:{i:064x}", commit_sha=f"c0ffee{i}", created_by="seed",
            workflow_id_prefix=f"deploy-{tenant}-{project}-{app}-"))
        ids.append(claim.deployment.id)
    return ids


def text_of(i: int) -> str:
    if i % 1000 == 3:
        return f"#{i:05d} LONG " + "x" * 10_000
    if i % 500 == 7:
        return f"#{i:05d} connecting with password={SECRET} attempt"
    if i % 10 == 0:
        return f"#{i:05d} level=error request failed"
    if i % 10 == 5:
        return f"#{i:05d} [WARN] slow request"
    return f"#{i:05d} GET /items/{i} 200 in {i % 97}ms"


def ident(line: dict[str, Any]) -> int:
    return int(line["line"][1:6])


@dataclass
class World:
    store: PgStore
    fake: FakeLoki
    logs: LokiLogStore
    releases: list[UUID]
    other_release: UUID
    lines: list[LogLine]  # what the fake holds for acme/shop/web

    def server(self, tenant: str = "acme", scopes: frozenset[str] = ALL, logs: LogStore | None = None,
               no_logs: bool = False) -> DeployMCP:
        deps = ServerDeps(store=self.store, config=PlatformConfig(apps_domain="apps.test"), secretbox=BOX,
                          logs=None if no_logs else (logs or self.logs))
        return build_server(deps, transport="memory", principal=Principal(tenant, "agent", scopes, "memory"))

    def expected(self, direction: Direction, keep: Callable[[LogLine], bool] = lambda x: True) -> list[int]:
        return [int(x.line[1:6]) for x in in_order([x for x in self.lines if keep(x)], direction)]


@pytest.fixture
async def world(store: PgStore) -> AsyncIterator[World]:
    for tenant, app in (("acme", "web"), ("other", "web"), ("other", "admin")):
        await seed_app(store, tenant, "shop", app)
    releases = await seed_releases(store, "acme", "shop", "web", 2)
    other_release = (await seed_releases(store, "other", "shop", "web", 1))[0]
    web = await store.get_app("acme", "shop", "web")
    assert web is not None
    await store.add_secret_version(web.id, 0, ["API_KEY", "SHORT"], BOX.seal({"API_KEY": SECRET, "SHORT": "abc"}),
                                   "seed")
    base = time.time_ns() - 1800 * 10**9
    by_pod: dict[str, list[tuple[int, str]]] = {p: [] for p in PODS}
    for i in range(N):
        pod = list(PODS)[i % 3]
        ts = base + 5_000_000 if i < 1000 else base + 10_000_000 + (i // 4) * 1_000_000
        by_pod[pod].append((ts, text_of(i)))
    streams = [LokiStream({"tenant": "acme", "project": "shop", "app": "web", "stream": "runtime", "pod": pod,
                           "container": "web", "deployment_id": str(releases[PODS[pod]]),
                           "commit_sha": f"c0ffee{PODS[pod] + 1}"}, values) for pod, values in by_pod.items()]
    streams.append(LokiStream({"tenant": "other", "project": "shop", "app": "web", "stream": "runtime",
                               "pod": "web-r1-a", "deployment_id": str(other_release)},
                              [(base + 5_000_000 + i, f"#{i:05d} OTHER TENANT LINE") for i in range(50)]))
    async with fake_loki_running() as fake:
        logs = LokiLogStore(LokiClient(fake.url))
        await logs.client.push(streams)
        lines = [LogLine(ts_ns=ts, line=text, labels=s.labels) for s in streams[:3] for ts, text in s.values]
        try:
            yield World(store=store, fake=fake, logs=logs, releases=releases, other_release=other_release,
                        lines=lines)
        finally:
            await logs.aclose()


async def call(c: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    r = await c.call_tool(tool, args)
    assert not r.is_error, r.content
    out: dict[str, Any] | None = r.structured_content
    assert out is not None
    return out


async def error_text(c: Client, tool: str, args: dict[str, Any]) -> str:
    r = await c.call_tool(tool, args)
    assert r.is_error
    return r.content[0].text  # type: ignore[union-attr]


async def collect(c: Client, args: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every line of a query, page by page, and the pages."""
    lines: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await call(c, "logs", {**args, **({"cursor": cursor} if cursor else {})})
        pages.append(page)
        lines.extend(page["app_output"]["lines"])
        cursor = page["next_cursor"]
        if cursor is None:
            return lines, pages
        assert len(pages) < 400, "paging does not end"


def page_bytes(page: dict[str, Any]) -> int:
    return sum(len(x["ts"]) + len(x["pod"] or "") + len(x["stream"]) + utf8_size(x["line"])
               for x in page["app_output"]["lines"])


WEB = {"project": "shop", "app": "web"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("direction", ["backward", "forward"])
async def test_pages_through_10000_lines_without_gap_or_duplicate(world: World, direction: Direction,
                                                                  mode: str) -> None:
    async with Client(world.server(), mode=mode) as c:
        lines, pages = await collect(c, {**WEB, "direction": direction, "limit": 1000})
    assert [ident(x) for x in lines] == world.expected(direction)
    stamps = [x["ts"] for x in lines]
    assert stamps == sorted(stamps, reverse=direction == "backward")
    burst = [k for k, x in enumerate(lines) if ident(x) < 1000]  # 1,000 lines in one nanosecond
    assert len(burst) == 1000 and burst == list(range(burst[0], burst[0] + 1000))
    assert len({lines[k]["ts"] for k in burst}) == 1
    for page in pages:
        assert len(page["app_output"]["lines"]) <= 1000 and page_bytes(page) == page["truncated"]["bytes"] <= 64 * 1024
    assert all(p["truncated"]["reason"] == "bytes" for p in pages[:-1])  # 1,000 lines never fit in 64 KiB
    assert pages[-1]["truncated"]["reason"] is None and pages[-1]["source"] == "loki"
    assert all('tenant="acme", project="shop", app="web"' in q for q in world.fake.queries)


async def test_filters_return_exactly_the_matching_lines(world: World) -> None:
    r2 = str(world.releases[1])
    cases: list[tuple[dict[str, Any], Callable[[LogLine], bool]]] = [
        ({"contains": "[WARN]"}, lambda x: "[WARN]" in x.line),
        ({"regex": r"items/1\d{3} "}, lambda x: re.search(r"items/1\d{3} ", x.line) is not None),
        ({"level": "error"}, lambda x: line_filter(level="error")(x.line)),
        ({"level": "warn", "contains": "request"}, lambda x: "request" in x.line and (
            "error" in x.line or "WARN" in x.line)),
        ({"pod": "web-r1-b"}, lambda x: x.labels["pod"] == "web-r1-b"),
        ({"deployment_id": r2}, lambda x: x.labels["deployment_id"] == r2),
        ({"deployment_id": r2, "regex": "(?i)LONG"}, lambda x: x.labels["deployment_id"] == r2 and "LONG" in x.line),
    ]
    async with Client(world.server()) as c:
        for args, keep in cases:
            lines, _ = await collect(c, {**WEB, "limit": 1000, **args})
            assert [ident(x) for x in lines] == world.expected("backward", keep), args
            assert lines, args
        foreign = await error_text(c, "logs", {**WEB, "deployment_id": str(world.other_release)})
        window = await call(c, "logs", {**WEB, "since": "2001-01-01T00:00:00Z",
                                                    "until": "2001-01-02T00:00:00"})
        bad_regex = await error_text(c, "logs", {**WEB, "regex": "(?<=x)y"})
        bad_since = await error_text(c, "logs", {**WEB, "since": "last tuesday"})
        bad_until = await error_text(c, "logs", {**WEB, "since": "1h", "until": "2h"})
    assert "No deployment named" in foreign and "deployments" in foreign
    assert window["app_output"]["lines"] == [] and window["next_cursor"] is None
    assert "Invalid `regex`" in bad_regex and "lookbehind" in bad_regex and "RE2" in bad_regex
    assert "Invalid `since`" in bad_since and "15m" in bad_since
    assert "Invalid `until`" in bad_until


async def test_caps_hold_and_the_cursor_continues_after_the_last_line(world: World) -> None:
    expected = world.expected("backward")
    async with Client(world.server()) as c:
        first = await call(c, "logs", {**WEB, "limit": 50})
        second = await call(c, "logs", {**WEB, "limit": 50, "cursor": first["next_cursor"]})
        longs, long_pages = await collect(c, {**WEB, "contains": "LONG", "direction": "forward"})
        wrong_filters = await error_text(c, "logs", {**WEB, "limit": 50, "contains": "GET",
                                                                  "cursor": first["next_cursor"]})
        wrong_direction = await error_text(c, "logs", {**WEB, "direction": "forward",
                                                                    "cursor": first["next_cursor"]})
        mangled = await error_text(c, "logs", {**WEB, "cursor": first["next_cursor"][:-4] + "AAAA"})
        too_many = await error_text(c, "logs", {**WEB, "limit": 1001})
    assert [ident(x) for x in first["app_output"]["lines"] + second["app_output"]["lines"]] == expected[:100]
    assert first["truncated"] == {"reason": "lines", "long_lines": 0, "bytes": page_bytes(first),
                                  "max_bytes": 65536}
    assert len(longs) == 10 and all(page_bytes(p) <= 64 * 1024 for p in long_pages)
    for x in longs:
        head, marker = x["line"].split("…")
        assert len(head.encode()) == 4096 and marker == f"[truncated {10_000 + 12 - 4096} bytes]"
    assert sum(p["truncated"]["long_lines"] for p in long_pages) == 10
    assert [ident(x) for x in longs] == world.expected("forward", lambda x: "LONG" in x.line)
    assert "Invalid `cursor`" in wrong_filters and "different filters" in wrong_filters
    assert "Invalid `cursor`" in wrong_direction and "direction='backward'" in wrong_direction
    assert "Invalid `cursor`" in mangled
    assert "Invalid `limit`" in too_many


async def test_another_tenants_logs_are_never_reached(world: World) -> None:
    async with Client(world.server()) as c:
        theirs = await error_text(c, "logs", {"project": "shop", "app": "admin"})
        their_labels = await error_text(c, "logs", {"labels": True, "project": "shop", "app": "admin"})
        injected, _ = await collect(c, {**WEB, "contains": '"} or {tenant="other"} |= "'})
        bad_pod = await error_text(c, "logs", {**WEB, "pod": 'x"}'})
        mine, _ = await collect(c, {**WEB, "limit": 1000, "since": "1d"})
        labels = await call(c, "logs", {"labels": True} | WEB)
    assert "No app named 'shop/admin'" in theirs and "No app named 'shop/admin'" in their_labels
    assert injected == [] and "Invalid `pod`" in bad_pod
    assert len(mine) == N and not any("OTHER" in x["line"] for x in mine)
    assert world.fake.queries and all('tenant="acme"' in q and 'tenant="other"' not in q for q in world.fake.queries)
    assert labels["labels"]["deployment_id"] == sorted(str(r) for r in world.releases)
    assert labels["labels"]["pod"] == sorted(PODS) and labels["labels"]["commit_sha"] == ["c0ffee1", "c0ffee2"]
    assert labels["source"] == "loki" and "tenant" not in labels["labels"]
    async with Client(world.server(tenant="other")) as c:
        other, _ = await collect(c, WEB)
        other_labels = await call(c, "logs", {"labels": True} | WEB)
    assert len(other) == 50 and all("OTHER TENANT" in x["line"] for x in other)
    assert other_labels["labels"]["deployment_id"] == [str(world.other_release)]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_unavailable_log_stores_are_clear_errors(world: World, store: PgStore, mode: str) -> None:
    port = free_port()
    unreachable = LokiLogStore(LokiClient(f"http://127.0.0.1:{port}", timeout=2.0))
    try:
        async with Client(world.server(logs=unreachable), mode=mode) as c:
            down = await error_text(c, "logs", WEB)
            down_labels = await error_text(c, "logs", {"labels": True} | WEB)
    finally:
        await unreachable.aclose()
    assert f"Loki at http://127.0.0.1:{port} is unreachable" in down and "temporarily unavailable" in down
    assert "Retry in a minute" in down and "temporarily unavailable" in down_labels
    world.fake.fail_status = 503
    async with Client(world.server(), mode=mode) as c:
        failing = await error_text(c, "logs", WEB)
    world.fake.fail_status = None
    assert "answered HTTP 503" in failing and "temporarily unavailable" in failing
    slow = LokiLogStore(LokiClient(world.fake.url, timeout=0.2))
    world.fake.delay_seconds = 1.0
    try:
        async with Client(world.server(logs=slow), mode=mode) as c:
            timed_out = await error_text(c, "logs", WEB)
    finally:
        world.fake.delay_seconds = 0.0
        await slow.aclose()
    assert "did not answer" in timed_out and "in time" in timed_out
    async with Client(world.server(no_logs=True), mode=mode) as c:
        none = await error_text(c, "logs", WEB)
    assert "no log store configured" in none and "DEPLOY_MCP_LOKI_URL" in none
    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT tool, outcome, error FROM audit_events ORDER BY id")).fetchall()
    assert [r["outcome"] for r in rows] == ["error"] * 5
    assert all("temporarily unavailable" in r["error"] or "no log store" in r["error"] for r in rows)


async def test_secret_values_are_masked(world: World) -> None:
    async with Client(world.server()) as c:
        leaks, _ = await collect(c, {**WEB, "contains": "password=", "limit": 1000})
        probe, probe_pages = await collect(c, {**WEB, "contains": SECRET[:12], "limit": 1})
        probe_regex, _ = await collect(c, {**WEB, "regex": "sk_live_7Q"})
        everything, _ = await collect(c, {**WEB, "limit": 1000})
    assert len(leaks) == 20 and all("password=[secret:API_KEY] attempt" in x["line"] for x in leaks)
    assert probe == [] and probe_regex == []  # a guess at a secret value matches nothing...
    assert len(probe_pages) == 1 and probe_pages[0]["truncated"]["reason"] is None  # ...and leaves no cursor
    assert SECRET not in str(everything) and "[secret:SHORT]" not in str(everything)


async def test_scope_is_required(world: World) -> None:
    async with Client(world.server(scopes=frozenset({"apps:read"}))) as c:
        denied = await error_text(c, "logs", WEB)
        denied_labels = await error_text(c, "logs", {"labels": True} | WEB)
    assert "logs:read" in denied and "logs:read" in denied_labels
    assert world.fake.queries == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_follow_returns_new_lines_and_reports_them_as_progress(world: World, mode: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools.logs, "FOLLOW_POLL_SECONDS", 0.2)
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    labels = {"tenant": "acme", "project": "shop", "app": "web", "stream": "runtime", "pod": "web-r2-a",
              "container": "web", "deployment_id": str(world.releases[1])}

    async def write_later() -> None:
        for batch in range(3):
            await asyncio.sleep(0.5)
            now = time.time_ns()
            await world.logs.client.push([LokiStream(labels, [
                (now, f"#9{batch}001 new line {batch}"), (now, f"#9{batch}002 token {SECRET} in batch {batch}")])])

    async with Client(world.server(), mode=mode) as c:
        writer = asyncio.create_task(write_later())
        r = await c.call_tool("logs", {**WEB, "limit": 40, "follow_seconds": 3},
                              progress_callback=on_progress)
        await writer
    assert not r.is_error and r.structured_content is not None
    out = r.structured_content
    # the page gets half of the caps
    assert len(out["app_output"]["lines"]) == 20 and out["truncated"]["reason"] == "lines"
    followed = [x["line"] for x in out["app_output"]["followed"]]
    assert followed == [f"#9{b}00{k} " + ("new line" if k == 1 else "token [secret:API_KEY] in batch") + f" {b}"
                        for b in range(3) for k in (1, 2)]
    assert all(x["pod"] == "web-r2-a" for x in out["app_output"]["followed"]) and out["follow_cursor"]
    assert seen and [v for v, _ in seen] == sorted(v for v, _ in seen) and seen[-1][0] == 6
    sent = "\n".join(m or "" for _, m in seen)
    assert all(line in sent for line in followed) and SECRET not in sent
    async with Client(world.server(), mode=mode) as c:
        later = await call(c, "logs", {**WEB, "direction": "forward", "cursor": out["follow_cursor"]})
    assert later["app_output"]["lines"] == [] and later["next_cursor"] is None


async def test_loki_client_speaks_the_documented_api() -> None:
    async with fake_loki_running(auth_enabled=True) as fake:
        team = LokiClient(fake.url, tenant="platform")
        anonymous = LokiClient(fake.url)
        try:
            now = time.time_ns()
            await team.push([LokiStream({"app": "web", "pod": "a"}, [(now - 3, "one"), (now - 2, "two")]),
                             LokiStream({"app": "web", "pod": "b"}, [(now - 1, "three")])])
            newest = await team.query_range('{app="web"}', now - 10, now, 2, "backward")
            oldest = await team.tail('{app="web"}', now - 10, 2, now_ns=now)
            assert sorted((s.labels["pod"], s.values) for s in newest) == [
                ("a", [(now - 2, "two")]), ("b", [(now - 1, "three")])]
            assert [v for s in oldest for v in s.values] == [(now - 3, "one"), (now - 2, "two")]
            assert await team.query_range('{app="web"}', now - 2, now - 1, 10, "forward") != []  # start inclusive
            assert await team.query_range('{app="web"}', now - 10, now - 3, 10, "forward") == []  # end exclusive
            assert await team.labels(now - 10, now) == ["app", "pod"]
            assert await team.label_values("pod", now - 10, now, query='{app="web"}') == ["a", "b"]
            with pytest.raises(LogQueryError, match="Loki refused the query: parse error"):
                await team.query_range('{app="web"} | json', now - 10, now, 10, "forward")
            with pytest.raises(LogQueryError, match="max entries limit"):
                await team.query_range('{app="web"}', now - 10, now, 5001, "forward")
            with pytest.raises(LogStoreUnavailable, match=r"answered HTTP 401 .*no org id"):
                await anonymous.query_range('{app="web"}', now - 10, now, 10, "forward")
        finally:
            await team.aclose()
            await anonymous.aclose()
    query = next(r for r in fake.requests if r.path.endswith("query_range"))
    assert query.org == "platform" and query.params["start"] == str(now - 10) and query.params["end"] == str(now)
    assert query.params["limit"] == "2" and query.params["direction"] == "backward"
    assert [r.org for r in fake.requests][-1] is None
