"""Harbor's v2.0 REST API, as far as the platform needs it: a private project per tenant, a robot account that
may push and pull that project's repositories, and a retention policy that keeps the last N pushed images.

Shapes and status codes follow Harbor's `api/v2.0/swagger.yaml`:
- `HEAD /projects?project_name=` (200/404), `GET /projects/{name}` with `X-Is-Resource-Name: true`,
  `POST /projects` `{"project_name", "metadata": {"public": "false"}}` (201 + Location, 409 when it exists).
- `GET /robots?q=Level=project,ProjectID=<id>`, `POST /robots` (`RobotCreate`; 201 + `RobotCreated` whose
  `secret` is returned only then), `PATCH /robots/{id}` (`RobotSec`): Harbor's "refresh the robot secret". A
  secret sent in the body must be 8-128 characters with an upper-case letter, a lower-case letter and a digit;
  Harbor then answers `{"secret": ""}` and the sent secret is the new one. An empty secret makes Harbor
  generate one and answer it.
- `POST /retentions` (`RetentionPolicy`; 201 + Location; 400 when the project already has one, whose id is
  in the project's metadata `retention_id`) and `PUT /retentions/{id}` (200).

Admin (or sufficiently privileged robot) credentials go by HTTP Basic. Failures are `HarborError`s with
`retryable`; messages name the project and what to do and never hold a secret.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from workflows.adapters.errors import AdapterError, AuthRefused, ResourceNotFound, ServiceUnavailable
from workflows.adapters.http import http_client
from workflows.domain.credentials import RobotCredentials

API = "/api/v2.0"
ROBOT_NAME = "deploy-mcp"
RETENTION_CRON = "0 0 * * * *"
"""Harbor's six-field cron (seconds first): hourly."""


class HarborError(AdapterError):
    """A Harbor call failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HarborAuthError(HarborError, AuthRefused):
    """401/403: the configured Harbor credentials are wrong or lack the permission."""


class HarborNotFound(HarborError, ResourceNotFound):
    """The project or robot does not exist."""


class HarborUnavailable(HarborError, ServiceUnavailable):
    """5xx, 429, a timeout or a connection error."""

    retryable = True


@dataclass(frozen=True)
class HarborProject:
    project_id: int
    name: str
    metadata: dict[str, str]

    @property
    def retention_id(self) -> int | None:
        value = self.metadata.get("retention_id")
        return int(value) if value and value.isdigit() else None


def new_robot_secret(length: int = 32) -> str:
    """A random secret that meets Harbor's rule for robot secrets (8-128 characters, at least one upper-case
    letter, one lower-case letter and one digit)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value):
            return value


def robot_permissions(project: str) -> list[dict[str, Any]]:
    return [
        {
            "kind": "project",
            "namespace": project,
            "access": [
                {"resource": "repository", "action": "pull"},
                {"resource": "repository", "action": "push"},
            ],
        }
    ]


def retention_policy(project_id: int, keep_last: int, *, cron: str = RETENTION_CRON) -> dict[str, Any]:
    """Keep the `keep_last` most recently pushed artifacts of every repository of the project."""
    return {
        "algorithm": "or",
        "rules": [
            {
                "disabled": False,
                "action": "retain",
                "template": "latestPushedK",
                "params": {"latestPushedK": keep_last},
                "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}],
                "scope_selectors": {
                    "repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]
                },
            }
        ],
        "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
        "scope": {"level": "project", "ref": project_id},
    }


def _errors(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or "") or None, str(errors[0].get("message") or "")[:300]
    return None, ""


def _id_from_location(response: httpx.Response) -> int | None:
    tail = response.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


class HarborClient:
    """A client of one Harbor (`url` like https://harbor.example.com). Close with `aclose()` or use as an async
    context manager."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        ca_file: str | Path | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._client = http_client(
            base_url=self._url + API,
            transport=transport,
            timeout=timeout,
            auth=httpx.BasicAuth(username, password),
            headers={"Accept": "application/json"},
            ca_file=ca_file,
        )

    def __repr__(self) -> str:
        return f"HarborClient({self._url!r})"

    @property
    def url(self) -> str:
        """The Harbor this client talks to (no trailing slash)."""
        return self._url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> HarborClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- projects ---------------------------------------------------------------------------------------------

    async def project_exists(self, name: str) -> bool:
        response = await self._send("HEAD", "/projects", params={"project_name": name})
        if response.status_code == 404:
            return False
        self._check(response, f"check project {name}")
        return True

    async def get_project(self, name: str) -> HarborProject:
        response = await self._send("GET", f"/projects/{name}", headers={"X-Is-Resource-Name": "true"})
        if response.status_code == 404:
            raise HarborNotFound(f"Harbor has no project {name}", status=404)
        self._check(response, f"read project {name}")
        return self._project(response.json(), name)

    async def ensure_project(self, name: str) -> HarborProject:
        """The private project `name`, created when missing (409: it exists already)."""
        body = {"project_name": name, "metadata": {"public": "false"}}
        response = await self._send("POST", "/projects", json=body)
        if response.status_code not in (201, 409):
            self._check(response, f"create project {name}")
        return await self.get_project(name)

    # -- robots -----------------------------------------------------------------------------------------------

    async def ensure_robot(self, project: str, name: str = ROBOT_NAME) -> RobotCredentials:
        """A project robot that may push and pull `project`'s repositories, never expiring, and its secret.

        Harbor returns a robot's secret only when it is created; when the robot exists already its secret is
        refreshed (PATCH /robots/{id}) to a new random one, so the caller always gets a working pair and must
        store it (the old secret stops working)."""
        info = await self.get_project(project)
        body = {
            "name": name,
            "description": f"deploy-mcp: push and pull of project {project}",
            "level": "project",
            "duration": -1,
            "disable": False,
            "permissions": robot_permissions(project),
        }
        response = await self._send("POST", "/robots", json=body)
        code, _ = _errors(response)
        if response.status_code == 201:
            created = response.json()
            if not isinstance(created, dict) or not created.get("secret") or not created.get("name"):
                raise HarborError(f"Harbor created the robot of project {project} but answered no name or secret")
            return RobotCredentials(str(created["name"]), str(created["secret"]))
        if response.status_code != 409 and code != "CONFLICT":
            self._check(response, f"create the robot of project {project}")
        robot = await self._find_robot(info, name)
        if robot is None:
            raise HarborNotFound(
                f"Harbor answered that the robot {name} of project {project} exists but does not list it; "
                "the configured Harbor credentials may lack permission to list the project's robots",
            )
        secret = new_robot_secret()
        refreshed = await self._send("PATCH", f"/robots/{robot['id']}", json={"secret": secret})
        self._check(refreshed, f"refresh the secret of the robot of project {project}")
        try:
            answered = refreshed.json().get("secret") if refreshed.content else None
        except (ValueError, AttributeError):
            answered = None
        return RobotCredentials(str(robot["name"]), str(answered) if answered else secret)

    async def find_robot(self, project: str, name: str = ROBOT_NAME) -> str | None:
        """The full name (robot$<project>+<name>) of the project's robot `name`, or None when Harbor has none:
        a stored secret of a robot deleted in Harbor is no use any more."""
        robot = await self._find_robot(await self.get_project(project), name)
        return str(robot["name"]) if robot is not None else None

    async def _find_robot(self, project: HarborProject, name: str) -> dict[str, Any] | None:
        page = 1
        while True:
            response = await self._send(
                "GET",
                "/robots",
                params={"q": f"Level=project,ProjectID={project.project_id}", "page": str(page), "page_size": "100"},
            )
            self._check(response, f"list the robots of project {project.name}")
            robots = response.json()
            if not isinstance(robots, list):
                raise HarborError(f"Harbor answered the robot list of project {project.name} with no list")
            for robot in robots:
                full = str(robot.get("name", "")) if isinstance(robot, dict) else ""
                # Harbor names project robots <prefix><project>+<name>; the prefix is configurable (robot$)
                if full.endswith(f"{project.name}+{name}") and isinstance(robot.get("id"), int):
                    return dict(robot)
            if len(robots) < 100:
                return None
            page += 1

    # -- retention --------------------------------------------------------------------------------------------

    async def set_retention(self, project: str, keep_last: int, *, cron: str = RETENTION_CRON) -> int:
        """Keep the last `keep_last` pushed images of each repository of `project` (creating the project's
        retention policy, or updating the one its metadata names); returns the policy id."""
        if not 1 <= keep_last <= 10000:
            raise ValueError("keep_last must be between 1 and 10000")
        info = await self.get_project(project)
        policy = retention_policy(info.project_id, keep_last, cron=cron)
        if info.retention_id is not None:
            body = {**policy, "id": info.retention_id}
            response = await self._send("PUT", f"/retentions/{info.retention_id}", json=body)
            self._check(response, f"update the retention policy of project {project}")
            return info.retention_id
        response = await self._send("POST", "/retentions", json=policy)
        if response.status_code == 400 and "already has retention policy" in _errors(response)[1]:
            again = await self.get_project(project)  # created meanwhile by someone else: update it
            if again.retention_id is not None:
                return await self.set_retention(project, keep_last, cron=cron)
        self._check(response, f"create the retention policy of project {project}")
        created = _id_from_location(response)
        if created is None:
            created = (await self.get_project(project)).retention_id
        if created is None:
            raise HarborError(f"Harbor created the retention policy of project {project} but did not say its id")
        return created

    # -- HTTP -------------------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._client.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException as e:
            raise HarborUnavailable(f"Harbor ({self._url}) did not answer in time ({type(e).__name__})") from None
        except httpx.TransportError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):  # retrying will not help: the CA is the operator's to give
                raise HarborError(f"Harbor ({self._url}) presented a certificate this worker does not trust: set "
                                  "harbor_ca_file to the CA bundle that signed it") from None
            raise HarborUnavailable(f"Harbor ({self._url}) could not be reached: {type(e).__name__}") from None

    def _check(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        code, message = _errors(response)
        suffix = f" [HTTP {status}{': ' + code if code else ''}{': ' + message if message else ''}]"
        if status in (401, 403):
            raise HarborAuthError(
                f"Harbor refused to {what}: the configured Harbor credentials are wrong or lack the permission"
                f"{suffix}",
                status=status,
                code=code,
            )
        if status == 404:
            raise HarborNotFound(f"Harbor could not {what}: not found{suffix}", status=status, code=code)
        if status == 429 or status >= 500:
            raise HarborUnavailable(f"Harbor could not {what} now; try again later{suffix}", status=status, code=code)
        raise HarborError(f"Harbor refused to {what}{suffix}", status=status, code=code)

    @staticmethod
    def _project(body: Any, name: str) -> HarborProject:
        if not isinstance(body, dict) or not isinstance(body.get("project_id"), int):
            raise HarborError(f"Harbor answered project {name} without a project_id")
        raw = body.get("metadata")
        metadata: dict[Any, Any] = raw if isinstance(raw, dict) else {}
        return HarborProject(
            int(body["project_id"]), str(body.get("name") or name), {str(k): str(v) for k, v in metadata.items()}
        )
