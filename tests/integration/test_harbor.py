"""The Harbor adapter (workflows/adapters/harbor.py) against a FAKE Harbor (tests/fakes/fake_harbor.py) that
speaks the part of Harbor's v2.0 REST API the platform uses, with its documented shapes and status codes.

- A tenant's project is created private, once: a second ensure_project meets 409 and reads it back.
- The robot can push and pull the project, never expires; its secret is returned at creation and, since Harbor
  never shows it again, refreshed (PATCH, Harbor's secret rule) when the robot exists already: the old secret
  stops working, the new one works.
- Retention keeps the last N pushed artifacts of every repository: created with POST, recorded in the
  project's metadata, updated with PUT afterwards.
- Errors: wrong credentials (401), unknown project (404), a refused request (400), Harbor down (5xx, timeout)
  map to typed errors with `retryable`; no message holds a password or a robot secret.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from mcp_server.devenv.git_server import self_signed_tls
from mcp_server.settings import load_settings
from mcp_server.worker import harbor_client
from tests.fakes.fake_harbor import FAKE_ADMIN, FAKE_HARBOR_URL, FakeHarbor, fake_harbor_running
from workflows.adapters.harbor import (
    HarborAuthError,
    HarborClient,
    HarborError,
    HarborNotFound,
    HarborUnavailable,
    new_robot_secret,
    retention_policy,
)


@pytest.fixture
def fake() -> FakeHarbor:
    return FakeHarbor()


def _client(fake: FakeHarbor, password: str = FAKE_ADMIN[1]) -> HarborClient:
    return HarborClient(FAKE_HARBOR_URL, FAKE_ADMIN[0], password, transport=fake.transport())


def _calls(fake: FakeHarbor) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r in fake.requests]


async def test_ensure_project_creates_a_private_project_once(fake: FakeHarbor) -> None:
    async with _client(fake) as harbor:
        assert await harbor.project_exists("acme") is False
        created = await harbor.ensure_project("acme")
        again = await harbor.ensure_project("acme")
        assert await harbor.project_exists("acme") is True
    assert created == again
    assert created.name == "acme" and created.metadata["public"] == "false" and created.retention_id is None
    post = next(r for r in fake.requests if r.method == "POST")
    assert json.loads(post.content) == {"project_name": "acme", "metadata": {"public": "false"}}
    assert _calls(fake) == [
        ("HEAD", "/api/v2.0/projects"),
        ("POST", "/api/v2.0/projects"),  # 201
        ("GET", "/api/v2.0/projects/acme"),
        ("POST", "/api/v2.0/projects"),  # 409: exists
        ("GET", "/api/v2.0/projects/acme"),
        ("HEAD", "/api/v2.0/projects"),
    ]
    assert all(r.headers["X-Is-Resource-Name"] == "true" for r in fake.requests if r.method == "GET")


async def test_robot_is_created_with_push_and_pull_and_refreshed_when_it_exists(fake: FakeHarbor) -> None:
    async with _client(fake) as harbor:
        await harbor.ensure_project("acme")
        first = await harbor.ensure_robot("acme")
        second = await harbor.ensure_robot("acme")
    assert first.name == second.name == "robot$acme+deploy-mcp"
    assert first.secret != second.secret
    assert fake.robot_login(second.name, second.secret) and not fake.robot_login(first.name, first.secret)
    create = json.loads(next(r for r in fake.requests if r.method == "POST" and r.url.path.endswith("/robots")).content)
    assert create["level"] == "project" and create["duration"] == -1 and create["name"] == "deploy-mcp"
    assert create["permissions"] == [
        {
            "kind": "project",
            "namespace": "acme",
            "access": [{"resource": "repository", "action": "pull"}, {"resource": "repository", "action": "push"}],
        }
    ]
    listing = next(r for r in fake.requests if r.method == "GET" and r.url.path.endswith("/robots"))
    assert listing.url.params["q"] == f"Level=project,ProjectID={fake.projects['acme']['project_id']}"
    patch = next(r for r in fake.requests if r.method == "PATCH")
    robot_id = next(iter(fake.robots))
    assert patch.url.path == f"/api/v2.0/robots/{robot_id}"
    assert json.loads(patch.content) == {"secret": second.secret}
    assert first.secret not in repr(first) and repr(first) == "RobotCredentials(name='robot$acme+deploy-mcp')"


async def test_robots_of_other_projects_are_not_mistaken(fake: FakeHarbor) -> None:
    async with _client(fake) as harbor:
        await harbor.ensure_project("acme")
        await harbor.ensure_project("acme2")
        other = await harbor.ensure_robot("acme2")
        mine = await harbor.ensure_robot("acme")
        mine_again = await harbor.ensure_robot("acme")
    assert other.name == "robot$acme2+deploy-mcp" and mine.name == mine_again.name == "robot$acme+deploy-mcp"
    assert fake.robot_login(other.name, other.secret), "refreshing acme's robot left acme2's alone"


def test_generated_secrets_meet_harbors_rule() -> None:
    for _ in range(50):
        secret = new_robot_secret()
        assert len(secret) == 32 and secret.isalnum()
        assert any(c.isupper() for c in secret) and any(c.islower() for c in secret)
        assert any(c.isdigit() for c in secret)


async def test_retention_keeps_the_last_pushed_images_created_then_updated(fake: FakeHarbor) -> None:
    async with _client(fake) as harbor:
        project = await harbor.ensure_project("acme")
        created = await harbor.set_retention("acme", 10)
        updated = await harbor.set_retention("acme", 3)
        assert (await harbor.get_project("acme")).retention_id == created
    assert created == updated
    assert fake.projects["acme"]["metadata"]["retention_id"] == str(created)
    policy = fake.retentions[created]
    assert policy == {**retention_policy(project.project_id, 3), "id": created}
    assert policy["rules"][0]["params"] == {"latestPushedK": 3}
    assert policy["rules"][0]["tag_selectors"] == [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}]
    assert policy["rules"][0]["scope_selectors"] == {
        "repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]
    }
    assert policy["trigger"] == {"kind": "Schedule", "settings": {"cron": "0 0 * * * *"}}
    assert policy["scope"] == {"level": "project", "ref": project.project_id} and policy["algorithm"] == "or"
    methods = [(m, p) for m, p in _calls(fake) if "retentions" in p]
    assert methods == [("POST", "/api/v2.0/retentions"), ("PUT", f"/api/v2.0/retentions/{created}")]
    async with _client(fake) as harbor:
        with pytest.raises(ValueError, match="keep_last"):
            await harbor.set_retention("acme", 0)


async def test_the_fake_refuses_what_harbor_refuses(fake: FakeHarbor) -> None:
    async with httpx.AsyncClient(transport=fake.transport(), base_url=FAKE_HARBOR_URL) as anonymous:
        assert (await anonymous.get("/api/v2.0/projects/acme")).status_code == 401
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=FAKE_HARBOR_URL, auth=httpx.BasicAuth(*FAKE_ADMIN)
    ) as admin:
        assert (await admin.post("/api/v2.0/projects", json={"project_name": "Bad Name"})).status_code == 400
        assert (
            await admin.post("/api/v2.0/projects", json={"project_name": "acme", "metadata": {"public": False}})
        ).status_code == 400, "ProjectMetadata values are strings"
        assert (await admin.post("/api/v2.0/projects", json={"project_name": "acme"})).status_code == 201
        robot = {"name": "x", "level": "project", "duration": -1, "permissions": [
            {"kind": "project", "namespace": "acme", "access": [{"resource": "repository", "action": "pull"}]}
        ]}
        created = await admin.post("/api/v2.0/robots", json=robot)
        assert created.status_code == 201 and created.headers["Location"].startswith("/api/v2.0/robots/")
        assert (await admin.post("/api/v2.0/robots", json=robot)).status_code == 409
        rid = created.json()["id"]
        weak = await admin.patch(f"/api/v2.0/robots/{rid}", json={"secret": "weak"})
        assert weak.status_code == 400 and "1 uppercase letter" in weak.text
        generated = await admin.patch(f"/api/v2.0/robots/{rid}", json={"secret": ""})
        assert generated.status_code == 200 and fake.robot_login("robot$acme+x", generated.json()["secret"])
        assert (await admin.get("/api/v2.0/robots", params={"q": "Level=project"})).status_code == 400
        pid = fake.projects["acme"]["project_id"]
        assert (await admin.post("/api/v2.0/retentions", json=retention_policy(pid, 5))).status_code == 201
        second = await admin.post("/api/v2.0/retentions", json=retention_policy(pid, 5))
        assert second.status_code == 400 and "already has retention policy" in second.text
        assert (await admin.post("/api/v2.0/retentions", json=retention_policy(9999, 5))).status_code == 400


async def test_wrong_credentials_are_an_auth_error_without_the_password(
    fake: FakeHarbor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with _client(fake, password="wrong-Pa55word") as harbor:
        with pytest.raises(HarborAuthError, match="credentials are wrong or lack the permission") as info:
            await harbor.ensure_project("acme")
    assert info.value.status == 401 and info.value.retryable is False
    assert "wrong-Pa55word" not in str(info.value) and "wrong-Pa55word" not in caplog.text
    assert "UNAUTHORIZED" in str(info.value)


async def test_unknown_project_and_refused_requests(fake: FakeHarbor) -> None:
    async with _client(fake) as harbor:
        with pytest.raises(HarborNotFound, match="no project ghost"):
            await harbor.ensure_robot("ghost")
        with pytest.raises(HarborNotFound):
            await harbor.set_retention("ghost", 5)
        with pytest.raises(HarborError, match="lower case or contains illegal characters") as bad:
            await harbor.ensure_project("Not_Valid!")
    assert type(bad.value) is HarborError and bad.value.status == 400 and bad.value.retryable is False


@pytest.mark.parametrize(
    ("fault", "retryable", "words"),
    [
        (httpx.Response(503, json={"errors": [{"code": "UNKNOWN", "message": "down"}]}), True, "HTTP 503"),
        (httpx.Response(429), True, "HTTP 429"),
        (httpx.Response(403, json={"errors": [{"code": "FORBIDDEN", "message": "forbidden"}]}), False, "FORBIDDEN"),
    ],
)
async def test_harbor_failures_map_to_typed_errors(
    fake: FakeHarbor, fault: httpx.Response, retryable: bool, words: str
) -> None:
    fake.fault = fault
    async with _client(fake) as harbor:
        with pytest.raises(HarborError) as info:
            await harbor.ensure_project("acme")
    assert info.value.retryable is retryable and words in str(info.value)
    assert isinstance(info.value, HarborUnavailable) is retryable


async def test_timeouts_are_retryable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with HarborClient(FAKE_HARBOR_URL, *FAKE_ADMIN, transport=httpx.MockTransport(slow)) as harbor:
        with pytest.raises(HarborUnavailable, match="did not answer in time") as info:
            await harbor.ensure_project("acme")
    assert info.value.retryable is True and FAKE_ADMIN[1] not in str(info.value)


async def test_a_harbor_behind_a_private_ca_is_reached_with_harbor_ca_file(tmp_path: Path) -> None:
    cert, key = self_signed_tls(tmp_path)
    async with fake_harbor_running(tls=(cert, key)) as (fake, url):
        settings = load_settings(harbor={"url": url, "username": FAKE_ADMIN[0], "password": FAKE_ADMIN[1],
                                         "ca_file": cert})
        trusted = harbor_client(settings)
        assert trusted is not None
        async with trusted:
            assert (await trusted.ensure_project("acme")).name == "acme"
        async with HarborClient(url, *FAKE_ADMIN) as untrusted:  # system CAs only
            with pytest.raises(HarborError, match="set harbor_ca_file") as info:
                await untrusted.ensure_project("acme2")
        assert not info.value.retryable and "acme2" not in fake.projects
