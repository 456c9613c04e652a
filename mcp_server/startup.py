"""What every command checks or loads at start from the settings, before it opens a client: the database URL,
the GitHub App's key, the secrets key. Apart from `wiring` (the server's assembly), so the worker and
`migrate` get them without loading the MCP SDK and the HTTP server (about 25 MB of the worker's memory)."""

from __future__ import annotations

import logging
import os

from mcp_server.settings import Settings
from workflows.adapters.github_app import GitHubApp, GitHubAppError
from workflows.domain.secretbox import SecretBox

log = logging.getLogger(__name__)


def require_database_url(settings: Settings) -> str:
    url = settings.database.url
    if not url:
        raise SystemExit(
            "deploy-mcp: no database. Set DATABASE_URL (or DEPLOY_MCP_DATABASE__URL), or run `deploy-mcp dev`, "
            "which starts an embedded Postgres."
        )
    return url


def open_github_app(settings: Settings) -> GitHubApp | None:
    """The platform's GitHub App when configured; its key is checked now (it must sign a JWT), so a wrong key
    stops the process at start rather than failing builds. Close it with `aclose()`."""
    if settings.github_app.id is None:
        return None
    try:
        pem = settings.github_app.private_key_pem()
    except OSError as e:
        raise SystemExit(f"deploy-mcp: cannot read github_app.private_key_file: {e.strerror}") from None
    assert pem is not None
    app = GitHubApp(settings.github_app.id, pem, settings.github_app.api_url, hosts=settings.github_app.hosts,
                    tenant_owners=settings.github_app.owners)
    try:
        app.app_jwt()
    except GitHubAppError as e:
        raise SystemExit(f"deploy-mcp: {e}") from None
    return app


def load_secretbox(settings: Settings) -> SecretBox:
    """The configured key, else one generated once into the state directory (0600), which suits `dev`."""
    if settings.secrets_key is not None:
        return SecretBox(settings.secrets_key.get_secret_value())
    path = settings.state_dir / "secrets.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(SecretBox.generate_key())
        log.warning("generated a secrets key in %s; set DEPLOY_MCP_SECRETS_KEY in production", path)
    return SecretBox(path.read_text().strip())
