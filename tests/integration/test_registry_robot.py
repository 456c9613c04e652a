"""The deploy's registry robot (workflows/activities/harbor.py) against the FAKE Harbor served over HTTP
(tests/fakes/fake_harbor.py) and a real Postgres store: the tenant's project, retention rule and robot are
ensured on every deploy; Harbor shows the robot's secret once, so it is kept sealed in `harbor_robots` and
reused; a lost or unreadable one, or a robot deleted in Harbor, is replaced; concurrent deploys of one tenant
end with one working secret; Harbor's failures become activity errors (unreachable: retried; refused
credentials: not, naming the settings). No secret reaches a log line or an error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from mcp_server.devenv.processes import free_port
from mcp_server.store import PgStore
from tests.fakes.fake_harbor import FAKE_ADMIN, FakeHarbor, fake_harbor_running
from workflows.activities.harbor import HarborActivities
from workflows.adapters.harbor import HarborClient
from workflows.adapters.kube import Kube
from workflows.domain.credentials import RobotCredentials
from workflows.domain.secretbox import SecretBox

REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def harbor() -> AsyncIterator[tuple[FakeHarbor, str]]:
    async with fake_harbor_running() as running:
        yield running


def _activities(store: PgStore, box: SecretBox, url: str, password: str = FAKE_ADMIN[1],
                keep_last: int = 5) -> HarborActivities:
    client = HarborClient(url, FAKE_ADMIN[0], password)
    # robot_credentials never touches the cluster; the pull Secret itself is checked on the testbed
    return HarborActivities(cast(Kube, None), store, box, client, REGISTRY, keep_last)


async def _close(acts: HarborActivities) -> None:
    assert acts.harbor is not None
    await acts.harbor.aclose()


def _calls(fake: FakeHarbor, method: str, suffix: str) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == method and r.url.path.endswith(suffix)]


async def _stored(store: PgStore, tenant: str) -> tuple[str, bytes] | None:
    row = await store._one("SELECT r.robot_name, r.ciphertext FROM harbor_robots r JOIN tenants t "
                           "ON t.id = r.tenant_id WHERE t.name = %s", tenant)
    return (row["robot_name"], bytes(row["ciphertext"])) if row else None


async def test_the_robot_is_created_once_and_its_secret_kept_sealed_and_reused(
    store: PgStore, harbor: tuple[FakeHarbor, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, url = harbor
    box = SecretBox(SecretBox.generate_key())
    acts = _activities(store, box, url)
    try:
        first = await acts.robot_credentials("acme")
        second = await acts.robot_credentials("acme")
    finally:
        await _close(acts)
    assert first == second and first.name == "robot$acme+deploy-mcp"
    assert fake.robot_login(first.name, first.secret)
    assert len(_calls(fake, "POST", "/robots")) == 1 and not _calls(fake, "PATCH", "")
    assert fake.projects["acme"]["metadata"]["public"] == "false"
    retention = fake.retentions[int(fake.projects["acme"]["metadata"]["retention_id"])]
    assert retention["rules"][0]["params"] == {"latestPushedK": 5}
    assert len(fake.retentions) == 1, "the rule is updated in place on later deploys"

    stored = await _stored(store, "acme")
    assert stored is not None and stored[0] == first.name
    assert first.secret.encode() not in stored[1], "sealed at rest"
    assert box.open(stored[1]) == {"secret": first.secret}
    assert first.secret not in caplog.text and FAKE_ADMIN[1] not in caplog.text


async def test_a_lost_or_unreadable_secret_is_refreshed_and_stored_again(
    store: PgStore, harbor: tuple[FakeHarbor, str]
) -> None:
    fake, url = harbor
    box = SecretBox(SecretBox.generate_key())
    acts = _activities(store, box, url)
    try:
        first = await acts.robot_credentials("acme")
        await store._one("DELETE FROM harbor_robots RETURNING project")  # lost
        second = await acts.robot_credentials("acme")
        assert second.name == first.name and second.secret != first.secret
        assert fake.robot_login(second.name, second.secret) and not fake.robot_login(first.name, first.secret)
        assert len(fake.robots) == 1 and len(_calls(fake, "PATCH", "")) == 1, "refreshed, not a second robot"
        assert await acts.robot_credentials("acme") == second, "the refreshed secret is the stored one now"

        other_key = _activities(store, SecretBox(SecretBox.generate_key()), url)  # the secrets key was replaced
        try:
            third = await other_key.robot_credentials("acme")
        finally:
            await _close(other_key)
        assert fake.robot_login(third.name, third.secret) and third.secret != second.secret
        assert len(_calls(fake, "PATCH", "")) == 2
    finally:
        await _close(acts)


async def test_a_robot_deleted_in_harbor_is_created_again(store: PgStore, harbor: tuple[FakeHarbor, str]) -> None:
    fake, url = harbor
    acts = _activities(store, SecretBox(SecretBox.generate_key()), url)
    try:
        first = await acts.robot_credentials("acme")
        fake.robots.clear()
        second = await acts.robot_credentials("acme")
    finally:
        await _close(acts)
    assert second.name == first.name and fake.robot_login(second.name, second.secret)
    assert len(_calls(fake, "POST", "/robots")) == 2 and len(fake.robots) == 1 and not _calls(fake, "PATCH", "")


async def test_concurrent_deploys_of_one_tenant_end_with_one_working_secret(
    store: PgStore, harbor: tuple[FakeHarbor, str]
) -> None:
    fake, url = harbor
    box = SecretBox(SecretBox.generate_key())
    workers = [_activities(store, box, url) for _ in range(4)]  # four workers, one database
    try:
        got: list[RobotCredentials] = await asyncio.gather(*(w.robot_credentials("acme") for w in workers))
    finally:
        for w in workers:
            await _close(w)
    assert len(set(got)) == 1 and fake.robot_login(got[0].name, got[0].secret)
    assert len(_calls(fake, "POST", "/robots")) == 1 and not _calls(fake, "PATCH", "")


async def test_tenants_get_their_own_project_and_robot(store: PgStore, harbor: tuple[FakeHarbor, str]) -> None:
    fake, url = harbor
    acts = _activities(store, SecretBox(SecretBox.generate_key()), url)
    try:
        acme, globex = await asyncio.gather(acts.robot_credentials("acme"), acts.robot_credentials("globex"))
    finally:
        await _close(acts)
    assert (acme.name, globex.name) == ("robot$acme+deploy-mcp", "robot$globex+deploy-mcp")
    assert fake.robot_login(acme.name, acme.secret) and fake.robot_login(globex.name, globex.secret)
    assert set(fake.projects) == {"acme", "globex"}


async def test_harbor_failures_become_activity_errors(
    store: PgStore, harbor: tuple[FakeHarbor, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, url = harbor
    box = SecretBox(SecretBox.generate_key())

    wrong = _activities(store, box, url, password="Wr0ng-password")
    try:
        with pytest.raises(ApplicationError) as refused:
            await wrong.robot_credentials("acme")
    finally:
        await _close(wrong)
    assert refused.value.type == "HarborAuth" and refused.value.non_retryable
    assert "harbor_password" in refused.value.message and "DEPLOY_MCP_HARBOR_PASSWORD" in refused.value.message
    assert "Wr0ng-password" not in refused.value.message and "Wr0ng-password" not in caplog.text

    acts = _activities(store, box, url)
    try:
        fake.fault = httpx.Response(503, json={"errors": [{"code": "UNKNOWN", "message": "down"}]})
        with pytest.raises(ApplicationError) as down:
            await acts.robot_credentials("acme")
        assert down.value.type == "HarborUnavailable" and not down.value.non_retryable
        fake.fault = None
        with pytest.raises(ApplicationError) as bad:
            await acts.robot_credentials("Not_A_Name")  # Harbor refuses the project name: retrying will not help
        assert bad.value.type == "HarborError" and bad.value.non_retryable
    finally:
        await _close(acts)

    unreachable = _activities(store, box, f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ApplicationError) as gone:
            await unreachable.robot_credentials("acme")
    finally:
        await _close(unreachable)
    assert gone.value.type == "HarborUnavailable" and not gone.value.non_retryable

    unconfigured = HarborActivities(cast(Kube, None), store, box, None, REGISTRY)
    with pytest.raises(ApplicationError) as missing:
        await unconfigured.robot_credentials("acme")
    assert missing.value.type == "HarborNotConfigured" and missing.value.non_retryable
    assert "harbor_url" in missing.value.message
    assert await _stored(store, "acme") is None, "nothing stored from failed attempts"
