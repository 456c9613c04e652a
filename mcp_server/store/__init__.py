"""The Postgres store: the schema migrations, and the queries behind the tools' `Store` port, the activities'
stores and the auth layer's `TokenStore`, one module per aggregate.

psycopg 3 with an async connection pool (`pool.py`); rows come back as dicts and leave as the typed records of
`tools.records`. Every query is parameterised; no value is ever pasted into SQL. The store raises the errors
declared beside its port (`tools.ports.StoreError`), never the tools' agent-facing ones.
"""

from __future__ import annotations

from mcp_server.store.apps import PgApps
from mcp_server.store.audit import PgAudit
from mcp_server.store.backup_runs import PgBackupRuns
from mcp_server.store.builds import PgBuilds
from mcp_server.store.ciphertexts import CIPHERTEXT_TABLES, PgCiphertexts, RotationCount
from mcp_server.store.databases import PgDatabases
from mcp_server.store.domains import PgDomains
from mcp_server.store.harbor_robots import PgHarborRobots, PgRobotSlot
from mcp_server.store.oauth import PgOAuth
from mcp_server.store.observations import PgObservations
from mcp_server.store.preflight import PgPreflight
from mcp_server.store.push_connections import PgPushConnections
from mcp_server.store.releases import PgReleases
from mcp_server.store.scaling import PgScaling
from mcp_server.store.schema import migrate, migration_files
from mcp_server.store.secret_versions import PgSecretVersions
from mcp_server.store.tokens import PgTokens, token_hash
from mcp_server.store.volumes import PgVolumes

__all__ = ["CIPHERTEXT_TABLES", "PgRobotSlot", "PgStore", "RotationCount", "migrate", "migration_files", "token_hash"]


class PgStore(PgApps, PgReleases, PgScaling, PgObservations, PgSecretVersions, PgVolumes, PgBuilds, PgHarborRobots,
              PgAudit, PgTokens, PgPreflight, PgBackupRuns, PgCiphertexts, PgOAuth, PgDatabases, PgDomains,
              PgPushConnections):
    """Implements `tools.ports.Store`, the activities' stores (`workflows.activities.stores`) and the auth
    layer's `TokenStore` on one psycopg async pool; `PgStore.open(url)` opens it."""
