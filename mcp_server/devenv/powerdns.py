"""A real PowerDNS Authoritative server (Debian's `pdns-server` + `pdns-backend-sqlite3`) on loopback, started and
stopped by PID: the platform zone's server in tests, and the custom domains' "owner's DNS" the verification asks.

Its own config dir (so /etc/powerdns is never read), the gsqlite3 backend with Debian's shipped schema, the API
and webserver on a free loopback port, every cache off (a record written through the API is answered at once,
which the tests and a verification retry both rely on). Runs in the foreground (`daemon=no`, `guardian=no`) so
`ManagedProcess` holds its PID.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mcp_server.devenv.processes import ManagedProcess, ServiceError, free_port, port_open

PDNS_SERVER = "/usr/sbin/pdns_server"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
INSTALL_HINT = "Install it with `apt-get install pdns-server pdns-backend-sqlite3` (Debian bookworm)."


@dataclass
class PowerDns:
    """One pdns_server in `run_dir`. `start()` waits until the API answers; `stop()` ends it by PID."""

    run_dir: Path
    host: str = "127.0.0.1"
    dns_port: int = 0
    api_port: int = 0
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: ManagedProcess | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def _config(self) -> str:
        lines = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(self.run_dir / "pdns.sqlite3"),
            "local-address": self.host,
            "local-port": str(self.dns_port),
            "api": "yes",
            "api-key": self.api_key,
            "webserver": "yes",
            "webserver-address": self.host,
            "webserver-port": str(self.api_port),
            "webserver-allow-from": "127.0.0.0/8",
            "socket-dir": str(self.run_dir),
            "guardian": "no",
            "daemon": "no",
            "disable-syslog": "yes",
            "write-pid": "no",
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
            "consistent-backends": "yes",
            "loglevel": "4",
        }
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def start(self, timeout: float = 20.0) -> None:
        if not Path(PDNS_SERVER).exists():
            raise ServiceError(f"powerdns: {PDNS_SERVER} not found. {INSTALL_HINT}")
        if not SCHEMA.exists():
            raise ServiceError(f"powerdns: the sqlite3 schema {SCHEMA} is missing. {INSTALL_HINT}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        db = self.run_dir / "pdns.sqlite3"
        if not db.exists():
            with sqlite3.connect(db) as conn:
                conn.executescript(SCHEMA.read_text())
        self.dns_port = self.dns_port or free_port(self.host)
        self.api_port = self.api_port or free_port(self.host)
        (self.run_dir / "pdns.conf").write_text(self._config())
        self.proc = ManagedProcess("pdns", [PDNS_SERVER, f"--config-dir={self.run_dir}"], self.run_dir,
                                   install_hint=INSTALL_HINT)
        self.proc.start()
        self.proc.wait_ready(self._api_answers, timeout, what="answering its API")
        self.proc.wait_ready(lambda: port_open(self.host, self.dns_port), timeout, what="serving DNS over TCP")

    def _api_answers(self) -> bool:
        try:
            r = httpx.get(f"{self.api_url}/api/v1/servers/localhost", headers={"X-API-Key": self.api_key},
                          timeout=1.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
