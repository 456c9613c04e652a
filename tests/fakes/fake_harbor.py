"""A fake Harbor v2.0 REST API (an httpx.MockTransport) for the calls Deploy MCP makes, with the request and
response shapes and status codes of Harbor's `api/v2.0/swagger.yaml` and the behaviour of its handlers:

- HTTP Basic auth on every call; without it or with a wrong password: 401 `{"errors":[{"code":"UNAUTHORIZED"}]}`.
- `HEAD /api/v2.0/projects?project_name=` 200/404; `GET /api/v2.0/projects?name=` (a fuzzy match, as Harbor's);
  `GET /api/v2.0/projects/{name_or_id}` (a name when `X-Is-Resource-Name: true`) 200/404;
  `POST /api/v2.0/projects` `ProjectReq` -> 201 + Location, 409 CONFLICT when the name exists, 400 for a bad
  name or a non-string metadata value.
- `GET /api/v2.0/robots?q=Level=project,ProjectID=<id>` (400 without ProjectID); `POST /api/v2.0/robots`
  `RobotCreate` -> 201 + Location + `RobotCreated` (the only time the secret is returned), 409 CONFLICT for a
  name the project has, 400 for a bad name/duration/level/permission, 404 for an unknown project;
  `PATCH /api/v2.0/robots/{id}` `RobotSec`: a given secret must be 8-128 characters with an upper-case letter,
  a lower-case letter and a digit (400 otherwise) and the answer has no secret; an empty one makes the fake
  generate and return one; 404 for an unknown robot.
- `POST /api/v2.0/retentions` `RetentionPolicy` -> 201 + Location and the project's metadata `retention_id`;
  400 when the project already has one, when the scope is not an existing project, or for an unknown rule
  template/selector; `PUT /api/v2.0/retentions/{id}` 200; `GET /api/v2.0/retentions/{id}`.
- Anything else: 404 NOT_FOUND.

`robot_login(name, secret)` tells whether a robot's current secret is that one (what a registry login checks).

`fake_harbor_running()` serves a FakeHarbor over real HTTP on 127.0.0.1 (aiohttp), for a worker configured
with `harbor_url` as an operator would configure it; the in-process tests use `transport()` instead.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from aiohttp import web

FAKE_HARBOR_URL = "https://harbor.fake.test"
FAKE_ADMIN = ("admin", "Harbor12345")
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TEMPLATES = {"latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always"}
_ACCESS = {("repository", "pull"), ("repository", "push"), ("artifact", "read"), ("tag", "list")}


def _errors(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]})


@dataclass
class FakeHarbor:
    users: dict[str, str] = field(default_factory=lambda: {FAKE_ADMIN[0]: FAKE_ADMIN[1]})
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    robots: dict[int, dict[str, Any]] = field(default_factory=dict)
    retentions: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    fault: httpx.Response | None = None
    robot_prefix: str = "robot$"
    _next_id: int = 1

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def robot_login(self, name: str, secret: str) -> bool:
        return any(r["name"] == name and r["secret"] == secret for r in self.robots.values())

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- dispatch ---------------------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fault is not None:
            return self.fault
        if not self._authenticated(request):
            return _errors(401, "UNAUTHORIZED", "unauthorized")
        path = request.url.path
        if not path.startswith("/api/v2.0/"):
            return _errors(404, "NOT_FOUND", "not found")
        parts = [unquote(p) for p in path[len("/api/v2.0/") :].strip("/").split("/")]
        method = request.method
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                return _errors(400, "BAD_REQUEST", "the body is not JSON")
        route = (method, parts[0], len(parts))
        if route == ("HEAD", "projects", 1):
            name = request.url.params.get("project_name", "")
            return httpx.Response(200 if name in self.projects else 404)
        if route == ("GET", "projects", 1):
            wanted = request.url.params.get("name", "")
            return httpx.Response(200, json=[self._project_json(p) for n, p in self.projects.items() if wanted in n])
        if route == ("GET", "projects", 2):
            project = self._project(parts[1], request.headers.get("X-Is-Resource-Name", "").lower() == "true")
            if project is None:
                return _errors(404, "NOT_FOUND", f"project {parts[1]} not found")
            return httpx.Response(200, json=self._project_json(project))
        if route == ("POST", "projects", 1):
            return self._create_project(body)
        if route == ("GET", "robots", 1):
            return self._list_robots(request)
        if route == ("POST", "robots", 1):
            return self._create_robot(body)
        if route == ("PATCH", "robots", 2) and parts[1].isdigit():
            return self._refresh_secret(int(parts[1]), body)
        if route == ("POST", "retentions", 1):
            return self._create_retention(body)
        if route[:2] in (("PUT", "retentions"), ("GET", "retentions")) and len(parts) == 2 and parts[1].isdigit():
            rid = int(parts[1])
            if rid not in self.retentions:
                return _errors(404, "NOT_FOUND", f"retention policy {rid} not found")
            if method == "GET":
                return httpx.Response(200, json=self.retentions[rid])
            problem = self._retention_problem(body)
            if problem:
                return _errors(400, "BAD_REQUEST", problem)
            self.retentions[rid] = {**body, "id": rid}
            return httpx.Response(200)
        return _errors(404, "NOT_FOUND", f"{method} {path} not found")

    def _authenticated(self, request: httpx.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return self.users.get(user) == password or self.robot_login(user, password)

    # -- projects ---------------------------------------------------------------------------------------------

    def _project(self, name_or_id: str, is_name: bool) -> dict[str, Any] | None:
        if not is_name and name_or_id.isdigit():
            return next((p for p in self.projects.values() if p["project_id"] == int(name_or_id)), None)
        return self.projects.get(name_or_id)

    @staticmethod
    def _project_json(project: dict[str, Any]) -> dict[str, Any]:
        return {**project, "metadata": dict(project["metadata"])}

    def _create_project(self, body: Any) -> httpx.Response:
        if not isinstance(body, dict):
            return _errors(400, "BAD_REQUEST", "a ProjectReq is required")
        name = body.get("project_name")
        if not isinstance(name, str) or not _NAME.match(name) or len(name) > 255:
            return _errors(400, "BAD_REQUEST", "project name is not in lower case or contains illegal characters")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            return _errors(400, "BAD_REQUEST", "metadata values must be strings")
        if name in self.projects:
            return _errors(409, "CONFLICT", f"The project named {name} already exists")
        pid = self._id()
        self.projects[name] = {
            "project_id": pid,
            "name": name,
            "metadata": {"public": metadata.get("public", "false"), **metadata},
            "repo_count": 0,
        }
        return httpx.Response(201, headers={"Location": f"/api/v2.0/projects/{pid}"})

    # -- robots -----------------------------------------------------------------------------------------------

    def _list_robots(self, request: httpx.Request) -> httpx.Response:
        query = dict(
            item.split("=", 1) for item in request.url.params.get("q", "").split(",") if "=" in item
        )
        level = query.get("Level", "system")
        if level == "project" and "ProjectID" not in query:
            return _errors(400, "BAD_REQUEST", "must with project ID when to query project robots")
        pid = int(query.get("ProjectID", "0"))
        found = [
            {k: v for k, v in r.items() if k != "secret"}
            for r in self.robots.values()
            if r["level"] == level and (level != "project" or r["project_id"] == pid)
        ]
        page, size = int(request.url.params.get("page", "1")), int(request.url.params.get("page_size", "10"))
        total = {"X-Total-Count": str(len(found))}
        return httpx.Response(200, json=found[(page - 1) * size : page * size], headers=total)

    def _create_robot(self, body: Any) -> httpx.Response:
        if not isinstance(body, dict):
            return _errors(400, "BAD_REQUEST", "a RobotCreate is required")
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            return _errors(400, "BAD_REQUEST", "robot name is not in lower case or contains illegal characters")
        duration = body.get("duration")
        if not isinstance(duration, int) or not (duration == -1 or duration > 0):
            return _errors(400, "BAD_REQUEST", f"bad request error duration input: {duration}")
        level = body.get("level")
        if level not in ("system", "project"):
            return _errors(400, "BAD_REQUEST", f"bad request error level input: {level}")
        permissions = body.get("permissions")
        if not isinstance(permissions, list) or not permissions:
            return _errors(400, "BAD_REQUEST", "bad request empty permission")
        if level == "project" and len(permissions) > 1:
            return _errors(400, "BAD_REQUEST", "bad request permission")
        for perm in permissions:
            access = perm.get("access") if isinstance(perm, dict) else None
            if not access:
                return _errors(400, "BAD_REQUEST", "bad request empty access")
            if perm.get("kind") != level:
                return _errors(400, "BAD_REQUEST", f"bad request permission level: {perm.get('kind')}")
            for item in access:
                if (item.get("resource"), item.get("action")) not in _ACCESS:
                    wrong = f"{item.get('resource')}:{item.get('action')}"
                    return _errors(400, "BAD_REQUEST", f"bad request permission: {wrong}")
        project = self.projects.get(permissions[0].get("namespace", "")) if level == "project" else None
        if level == "project" and project is None:
            return _errors(404, "NOT_FOUND", f"project {permissions[0].get('namespace')} not found")
        full = f"{self.robot_prefix}{project['name']}+{name}" if project else f"{self.robot_prefix}{name}"
        if any(r["name"] == full for r in self.robots.values()):
            return _errors(409, "CONFLICT", f"robot account {full} already exists")
        rid = self._id()
        secret = secrets.token_urlsafe(24)
        self.robots[rid] = {
            "id": rid,
            "name": full,
            "description": body.get("description", ""),
            "level": level,
            "duration": duration,
            "disable": bool(body.get("disable", False)),
            "expires_at": -1 if duration == -1 else 0,
            "permissions": permissions,
            "project_id": project["project_id"] if project else 0,
            "editable": True,
            "secret": secret,
        }
        created = {"id": rid, "name": full, "secret": secret, "creation_time": "2026-01-01T00:00:00.000Z",
                   "expires_at": -1 if duration == -1 else 0}
        return httpx.Response(201, headers={"Location": f"/api/v2.0/robots/{rid}"}, json=created)

    def _refresh_secret(self, rid: int, body: Any) -> httpx.Response:
        robot = self.robots.get(rid)
        if robot is None:
            return _errors(404, "NOT_FOUND", f"robot {rid} not found")
        given = body.get("secret", "") if isinstance(body, dict) else ""
        if given:
            valid = (
                8 <= len(given) <= 128
                and any(c.isupper() for c in given)
                and any(c.islower() for c in given)
                and any(c.isdigit() for c in given)
            )
            if not valid:
                return _errors(
                    400,
                    "BAD_REQUEST",
                    "the secret must be 8-128, inclusively, characters long with at least 1 uppercase letter, "
                    "1 lowercase letter and 1 number",
                )
            robot["secret"] = given
            return httpx.Response(200, json={})
        robot["secret"] = secrets.token_urlsafe(24)
        return httpx.Response(200, json={"secret": robot["secret"]})

    # -- retention --------------------------------------------------------------------------------------------

    def _retention_problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "a RetentionPolicy is required"
        rules = body.get("rules")
        if not isinstance(rules, list) or len(rules) > 15:
            return "only 15 rules are allowed at most"
        for rule in rules:
            template = rule.get("template")
            if template not in _TEMPLATES:
                return f"rule template {template} is not supported"
            if template != "always" and not isinstance((rule.get("params") or {}).get(template), int):
                return f"rule {template} needs the integer parameter {template}"
            for selector in rule.get("tag_selectors") or []:
                if selector.get("kind") != "doublestar" or selector.get("decoration") not in ("matches", "excludes"):
                    return "tag selectors are doublestar with decoration matches or excludes"
            for selector in (rule.get("scope_selectors") or {}).get("repository") or []:
                decoration = selector.get("decoration")
                if selector.get("kind") != "doublestar" or decoration not in ("repoMatches", "repoExcludes"):
                    return "repository selectors are doublestar with decoration repoMatches or repoExcludes"
        trigger = body.get("trigger") or {}
        if trigger.get("kind") != "Schedule" or not isinstance((trigger.get("settings") or {}).get("cron"), str):
            return "the trigger is {kind: Schedule, settings: {cron}}"
        scope = body.get("scope") or {}
        if scope.get("level") != "project":
            return f"scope {scope.get('level')} is not support"
        if not any(p["project_id"] == scope.get("ref") for p in self.projects.values()):
            return f"invalid Project id {scope.get('ref')}"
        return None

    def _create_retention(self, body: Any) -> httpx.Response:
        problem = self._retention_problem(body)
        if problem:
            return _errors(400, "BAD_REQUEST", problem)
        project = next(p for p in self.projects.values() if p["project_id"] == body["scope"]["ref"])
        if project["metadata"].get("retention_id"):
            return _errors(
                400,
                "BAD_REQUEST",
                f"project {project['project_id']} already has retention policy {project['metadata']['retention_id']}",
            )
        rid = self._id()
        self.retentions[rid] = {**body, "id": rid}
        project["metadata"]["retention_id"] = str(rid)
        return httpx.Response(201, headers={"Location": f"/api/v2.0/retentions/{rid}"})


# -- over HTTP ------------------------------------------------------------------------------------------------

_HOP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection"}


@asynccontextmanager
async def fake_harbor_running(fake: FakeHarbor | None = None, *, tls: tuple[Path, Path] | None = None
                              ) -> AsyncIterator[tuple[FakeHarbor, str]]:
    """`fake` (a new one by default) answering on a free loopback port, over https with `tls` (cert, key):
    yields (fake, its URL)."""
    harbor = fake or FakeHarbor()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        forwarded = httpx.Request(request.method, str(request.url), headers=dict(request.headers), content=body)
        answer = harbor.handle(forwarded)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
        return web.Response(status=answer.status_code, headers=headers, body=answer.content)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield harbor, f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
