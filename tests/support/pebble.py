"""A real ACME server for the tests: Debian's `pebble` on loopback, started and stopped by PID.

Its ACME listener speaks TLS with a throwaway self-signed certificate (trusted by the client through
`acme_ca`); its HTTP-01 validations go to `http_port` of whatever address the test DNS (`-dnsserver`, the real
PowerDNS) gives the hostname; `PEBBLE_VA_NOSLEEP=1` skips its random validation delays and
`PEBBLE_WFE_NONCEREJECT=0` its random bad-nonce rejections, so a run is quick and deterministic. The root it
issues under is read from the management listener (`/roots/0`).
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from mcp_server.devenv.git_server import self_signed_tls
from mcp_server.devenv.processes import ManagedProcess, free_port

PEBBLE = "/usr/bin/pebble"
VALIDITY_SECONDS = 90 * 86400  # like Let's Encrypt: cert-manager renews at two thirds of it


@dataclass
class Pebble:
    run_dir: Path
    dns_server: str  # host:port of the DNS Pebble's validation authority resolves names with
    http_port: int = 0
    acme_port: int = 0
    management_port: int = 0
    proc: ManagedProcess | None = None

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def acme_ca(self) -> Path:
        """The PEM the ACME client trusts for Pebble's own listener."""
        return self.run_dir / "cert.pem"

    def start(self, timeout: float = 20.0) -> None:
        if not Path(PEBBLE).exists():
            raise RuntimeError(f"{PEBBLE} not found: install it with `apt-get install pebble` (Debian bookworm)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_tls(self.run_dir)
        self.http_port = self.http_port or free_port()
        self.acme_port = self.acme_port or free_port()
        self.management_port = self.management_port or free_port()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": self.http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "certificateValidityPeriod": VALIDITY_SECONDS,
        }}
        (self.run_dir / "pebble.json").write_text(json.dumps(config))
        env = dict(os.environ) | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                                  "PEBBLE_AUTHZREUSE": "0"}
        self.proc = ManagedProcess("pebble", [PEBBLE, "-config", str(self.run_dir / "pebble.json"),
                                              "-dnsserver", self.dns_server], self.run_dir, env=env)
        self.proc.start()
        try:
            self.proc.wait_ready(self._answers, timeout, what="serving its ACME directory")
        except BaseException:
            self.stop()
            raise

    def _trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.acme_ca))

    def _answers(self) -> bool:
        try:
            return httpx.get(self.directory_url, verify=self._trust(), timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def root_pem(self) -> str:
        """The root CA Pebble issues under (generated at each start)."""
        r = httpx.get(f"https://127.0.0.1:{self.management_port}/roots/0", verify=self._trust(), timeout=5.0)
        r.raise_for_status()
        return r.text

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
