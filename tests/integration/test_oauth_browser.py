"""The OAuth sign-in as a person does it: in Debian's headless Chromium (driven by selenium through the system
chromedriver, nothing downloaded), against the real server (uvicorn, real Postgres) and the fake GitHub over
real HTTP. The MCP SDK's OAuth client starts the flow (discovery, registration, PKCE S256) and hands its
authorization URL to the browser; the browser signs in at the fake GitHub's form, sees the consent page, clicks
Allow (or Deny), and lands on the client's own loopback redirect URI, a real listener, as with a desktop agent.
MCP Inspector's CLI signs in the same way, with its own OAuth client. Debian's packages come from `make browser`
(mcp_server/devenv/browser_packages.sh)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import uvicorn
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver  # Chromium's, with get_log
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore, token_hash
from mcp_server.wiring import http_server, make_server, platform_config
from tests.fakes.fake_github_oauth import FakeGitHubOAuth, fake_github_oauth_running
from tests.support.memory_tokens import MemoryTokens
from tests.support.serving import serving

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCOPES = ["apps:read", "apps:write", "logs:read"]
_missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
if _missing and os.geteuid() != 0:
    pytest.skip(f"{', '.join(_missing)} missing and not root to install them: run `sudo make browser` "
                "(Debian's chromium and chromium-driver)", allow_module_level=True)
# as root `make test` installs them first, so their absence there is a failure, not a skip
assert not _missing, f"{', '.join(_missing)} missing: run `make browser` (Debian's chromium and chromium-driver)"


@dataclass
class Loopback:
    """The agent's redirect URI: a real listener on 127.0.0.1 that keeps each query it is sent."""

    url: str
    hits: list[dict[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def loopback_listening() -> AsyncIterator[Loopback]:
    port = free_port()
    lb = Loopback(f"http://127.0.0.1:{port}/callback")

    async def callback(request: Request) -> Response:
        lb.hits.append(dict(request.query_params))
        lb.arrived.set()
        return HTMLResponse("<!doctype html><title>Signed in</title><p id=done>You can close this window.</p>")

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/callback", callback)]), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    async with serving(server):
        yield lb


@contextmanager
def chromium() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check"):
        options.add_argument(arg)
    # the response headers the browser received, and its console (where it reports a CSP refusal)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # the path is given, so selenium's driver manager is never asked to download a driver
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def browser_log(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    """Chromium's `kind` log ("performance", "browser") since the last read."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]  # unannotated upstream
    return entries


def response_headers(driver: WebDriver, path: str) -> dict[str, str]:
    """The headers of the last response Chromium received for a URL whose path is `path`."""
    found: dict[str, str] | None = None
    for entry in browser_log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if urlsplit(response["url"]).path == path:
                found = {k.lower(): v for k, v in response["headers"].items()}
    assert found is not None, f"Chromium received no response for {path}"
    return found


@dataclass
class Env:
    mcp_url: str
    issuer: str
    store: PgStore


@pytest.fixture
async def env(store: PgStore) -> AsyncIterator[Env]:
    fake = FakeGitHubOAuth()  # nobody signed in: the browser fills in GitHub's sign-in form
    fake.add_user("octocat", orgs={"acme": True})
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    fake.callback_url = issuer + "/oauth/github/callback"
    async with fake_github_oauth_running(fake) as gh:
        settings = load_settings(http={"port": port}, oauth={
            "enabled": True, "client_id": fake.client_id, "client_secret": fake.client_secret,
            "github_url": gh, "github_api_url": gh + "/api/v3",
            "rules": [{"tenant": "acme", "org": "acme", "scopes": SCOPES}]})
        deps = ServerDeps(store=store, config=platform_config(settings))
        async with serving(http_server(settings, make_server(settings, deps, "http"))):
            yield Env(settings.http.mcp_url(), issuer, store)


@dataclass
class Seen:
    """What the person saw on the way."""

    authorize_query: dict[str, list[str]] = field(default_factory=dict)
    consent_text: str = ""
    consent_items: list[str] = field(default_factory=list)
    consent_headers: dict[str, str] = field(default_factory=dict)
    landed: str = ""


def sign_in_and_answer(driver: WebDriver, url: str, decision: str, seen: Seen) -> None:
    """In the browser: the authorization URL, GitHub's sign-in form, the consent page, a click on `decision`."""
    seen.authorize_query = parse_qs(urlsplit(url).query)
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_elements(By.ID, "login_field"))
    driver.find_element(By.ID, "login_field").send_keys("octocat")
    driver.find_element(By.ID, "password").send_keys("not checked by the fake")
    driver.find_element(By.NAME, "commit").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[name=decision]"))
    seen.consent_text = driver.find_element(By.TAG_NAME, "body").text
    seen.consent_items = [li.text for li in driver.find_elements(By.TAG_NAME, "li")]
    seen.consent_headers = response_headers(driver, "/oauth/github/callback")
    driver.find_element(By.CSS_SELECTOR, f"button[name=decision][value={decision}]").click()
    wait.until(lambda d: d.current_url.startswith(seen.landed))


@dataclass
class Outcome:
    seen: Seen
    loopback: Loopback
    storage: MemoryTokens
    tools: list[str] | None  # what tools/list answered, None when the client gave up
    error: Exception | None
    seconds: float


async def run_flow(env: Env, decision: str) -> Outcome:
    """The SDK's OAuth client against the server with Chromium as its browser, the person clicking `decision`."""
    seen = Seen()
    started = time.monotonic()
    async with loopback_listening() as lb:
        seen.landed = lb.url

        def browse(url: str) -> None:
            with chromium() as driver:
                sign_in_and_answer(driver, url, decision, seen)

        async def redirect_handler(url: str) -> None:
            # in a thread: the servers answering the browser run on this event loop
            await asyncio.to_thread(browse, url)

        async def callback_handler() -> AuthorizationCodeResult:
            await asyncio.wait_for(lb.arrived.wait(), 10)
            hit = lb.hits[-1]
            if "code" not in hit:  # what a client does with an error answer: gives up, with the reason
                raise PermissionError(f"{hit.get('error')}: {hit.get('error_description')}")
            return AuthorizationCodeResult(code=hit["code"], state=hit.get("state"))

        storage = MemoryTokens()
        auth = OAuthClientProvider(
            env.mcp_url, OAuthClientMetadata(client_name="Chromium Test Agent", redirect_uris=[AnyUrl(lb.url)],
                                             grant_types=["authorization_code", "refresh_token"],
                                             response_types=["code"], token_endpoint_auth_method="none"),
            storage, redirect_handler, callback_handler)
        tools: list[str] | None = None
        error: Exception | None = None
        try:
            async with httpx2.AsyncClient(auth=auth) as hc, \
                    Client(streamable_http_client(env.mcp_url, http_client=hc)) as c:
                tools = [t.name for t in (await c.list_tools()).tools]
        except Exception as e:  # the deny run asserts on it
            error = e
    return Outcome(seen, lb, storage, tools, error, time.monotonic() - started)


async def token_rows(env: Env) -> int:
    async with env.store.pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) AS n FROM oauth_tokens")).fetchone()
    return int(row["n"]) if row else 0


def assert_consent_as_seen(env: Env, seen: Seen, client_name: str = "Chromium Test Agent") -> None:
    # the authorization request the MCP client made: PKCE S256, bound to the MCP resource (RFC 8707)
    assert seen.authorize_query["code_challenge_method"] == ["S256"]
    assert seen.authorize_query["resource"] == [env.mcp_url]
    assert len(seen.authorize_query["code_challenge"][0]) == 43  # base64url of a SHA-256, unpadded
    # what the person reads: the client by its registered name, the GitHub user, the tenant, each scope
    for text in ("Allow access to Deploy MCP?", client_name, "octocat", "acme", "127.0.0.1"):
        assert text in seen.consent_text, seen.consent_text
    assert seen.consent_items == SCOPES
    csp = seen.consent_headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "form-action" not in csp  # Chromium would then block the redirect back to the client
    assert seen.consent_headers["x-frame-options"] == "DENY"
    assert seen.consent_headers["cache-control"] == "no-store"


async def test_the_consent_clicked_in_chromium_gives_the_mcp_client_a_token_for_tools_list(env: Env) -> None:
    run = await run_flow(env, "allow")
    print(f"chromium allow flow: {run.seconds:.1f} s")
    assert_consent_as_seen(env, run.seen)
    assert run.error is None and run.tools is not None, repr(run.error)
    assert {"whoami", "apps", "deploy"} <= set(run.tools), run.tools
    # Chromium followed the 303 to the client's loopback listener with a code and the client's state
    assert len(run.loopback.hits) == 1 and set(run.loopback.hits[0]) == {"code", "state"}
    storage = run.storage
    assert storage.tokens is not None and storage.tokens.refresh_token
    async with env.store.pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) AS n FROM oauth_tokens WHERE token_hash = %s",
                                        (token_hash(storage.tokens.access_token),))).fetchone()
    assert row is not None and row["n"] == 1


async def test_deny_clicked_in_chromium_sends_access_denied_and_no_token_exists(env: Env) -> None:
    run = await run_flow(env, "deny")
    print(f"chromium deny flow: {run.seconds:.1f} s")
    assert_consent_as_seen(env, run.seen)
    hits = run.loopback.hits
    assert len(hits) == 1 and hits[0]["error"] == "access_denied", hits
    assert "code" not in hits[0] and hits[0]["state"]
    assert run.tools is None and "access_denied" in repr(run.error), repr(run.error)
    assert run.storage.tokens is None
    assert await token_rows(env) == 0


async def test_chromium_refuses_to_frame_the_sign_in_pages(env: Env) -> None:
    """Clickjacking: a page of another origin framing the platform's sign-in pages gets nothing rendered.
    Framed here is the page a stale sign-in link shows (the consent page is one-shot); both are sent with the
    same headers (mcp_server/oauth/pages.py), which the two flows above check on the consent page itself."""
    framed = f"{env.issuer}/oauth/github/callback?state=stale"
    async with loopback_listening() as lb:

        def frame() -> list[str]:
            with chromium() as driver:
                driver.get(lb.url)  # an http origin other than the platform's
                driver.execute_script("const f = document.createElement('iframe'); f.src = arguments[0];"
                                      "document.body.appendChild(f)", framed)
                console: list[str] = []
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not any("frame-ancestors" in m for m in console):
                    time.sleep(0.1)
                    console += [e["message"] for e in browser_log(driver, "browser")]
                return console

        console = await asyncio.to_thread(frame)
    assert any("frame-ancestors 'none'" in m and "has been blocked" in m for m in console), console


INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"  # as tests/integration/test_http_auth.py
_NAVIGATE = re.compile(r"(http://127\.0\.0\.1:\d+/authorize\?\S+)")


@pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js (npx) is not installed")
async def test_mcp_inspector_cli_signs_in_with_oauth_and_lists_tools(env: Env, tmp_path: Path) -> None:
    """MCP Inspector's CLI with no token: its own OAuth client (discovery, registration, PKCE) prints the
    authorization URL and listens on its loopback callback; the person signs in and allows in Chromium; the
    CLI then exchanges the code and answers tools/list."""
    callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "npx", "-y", INSPECTOR, "--cli", env.mcp_url, "--transport", "http", "--method", "tools/list",
        "--callback-url", callback, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # a home of its own (Inspector keeps client config there), secrets in memory. Without a TTY Inspector
        # signs in only when told to open a browser itself; xdg-open's BROWSER is then `true` (opens nothing)
        # and the test's Chromium opens the URL Inspector prints
        env={**os.environ, "HOME": str(tmp_path), "MCP_INSPECTOR_SECRET_STORE": "memory",
             "MCP_AUTO_OPEN_ENABLED": "true", "BROWSER": "true", "NO_COLOR": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    seen = Seen(landed=callback)
    stderr: list[str] = []
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            assert line, "Inspector ended without an authorization URL: " + "".join(stderr)[-2000:]
            stderr.append(line)
            m = _NAVIGATE.search(line)
            url = m.group(1) if m else None

        def browse() -> None:
            with chromium() as driver:
                sign_in_and_answer(driver, url, "allow", seen)

        await asyncio.to_thread(browse)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    print(f"inspector oauth flow: {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, ("".join(stderr) + err.decode())[-2000:]
    # Inspector registered itself by name; the consent names its loopback listener as where the answer goes
    assert_consent_as_seen(env, seen, "MCP Inspector")
    assert f"returning to {urlsplit(callback).netloc}" in seen.consent_text, seen.consent_text
    names = {t["name"] for t in json.loads(out)["tools"]}
    assert {"whoami", "apps", "deploy"} <= names
    # one grant, bound to this MCP endpoint (RFC 8707) for the GitHub user who clicked
    async with env.store.pool.connection() as conn:
        grants = await (await conn.execute("SELECT resource, subject FROM oauth_grants")).fetchall()
    assert [(g["resource"], g["subject"]) for g in grants] == [(env.mcp_url, "github:octocat")]
