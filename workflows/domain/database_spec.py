"""A platform database (Postgres) as data: what an agent asks for, the names of its Kubernetes objects and the
connection an app receives. Pure, shared by the tools (validation), the renderers and the workflow.

Object names are `postgres--<name>`: app names may not contain "--" (workflows/domain/names.py), so no app's
Deployment, Service or Secret can ever take a database's name in the same namespace, whatever the two are called.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import quote

from pydantic import Field

from workflows.domain.specs import Resources, Spec

PORT = 5432
PORT_NAME = "postgres"
POSTGRES_UID = 999
"""The uid (and gid) image/postgres/Containerfile gives the `postgres` account before installing Debian's
package, so pods can name it in `runAsUser` (Debian's postinst would otherwise pick the next free system uid)."""
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
"""One level below the mount point: an ext4 volume's root holds `lost+found`, and initdb wants an empty dir."""
SOCKET_DIR = "/var/run/postgresql"
CONNECTION_VARIABLES = ("DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD")
"""What an attached app receives, as secrets of its release."""
SIZE_MAX_GIB = 1024

Engine = Literal["statefulset", "cloudnative-pg"]


class DatabaseResources(Resources):
    """The database pod's CPU and memory; Postgres gets a quarter of the memory as shared_buffers."""

    cpu_millicores: int = Field(250, ge=50, le=16000, description="CPU request, in thousandths of a core.")
    cpu_limit_millicores: int = Field(1000, ge=50, le=32000, description="CPU ceiling (throttled above it).")
    memory_mib: int = Field(512, ge=128, le=65536, description="Memory request and limit, MiB.")


class DatabaseSpec(Spec):
    """Everything the renderers need for one database."""

    tenant: str
    project: str
    namespace: str
    name: str
    version: int = Field(ge=10, le=99, description="Postgres major version.")
    image: str = Field(description="The Postgres image of that major version.")
    size_gib: int = Field(ge=1, le=SIZE_MAX_GIB)
    storage_class: str
    resources: DatabaseResources = Field(default_factory=DatabaseResources)
    app: str | None = Field(None, description="The attached app: its pods alone may connect.")
    engine: Engine = "statefulset"
    image_pull_secret: str | None = None

    @property
    def object_name(self) -> str:
        return database_object_name(self.name)

    @property
    def claim(self) -> str:
        return f"{self.object_name}-data"

    @property
    def secret(self) -> str:
        """The Secret holding the password the database was initialised with (and rotated to)."""
        return self.object_name

    @property
    def database(self) -> str:
        return sql_name(self.name)

    @property
    def user(self) -> str:
        return sql_name(self.name)

    @property
    def host(self) -> str:
        """The Service's name qualified by namespace: resolves from the project's pods and the platform's alike.
        A CloudNativePG Cluster serves its primary as `<cluster>-rw`."""
        service = f"{self.object_name}-rw" if self.engine == "cloudnative-pg" else self.object_name
        return f"{service}.{self.namespace}.svc"


def database_object_name(name: str) -> str:
    return f"postgres--{name}"


def sql_name(name: str) -> str:
    """A platform name as a Postgres identifier that needs no quoting ("-" is not allowed unquoted)."""
    return name.replace("-", "_")


def connection_env(spec: DatabaseSpec, password: str) -> dict[str, str]:
    """The variables an attached app receives (secrets of its release: never plain config, never shown)."""
    url = f"postgresql://{quote(spec.user, safe='')}:{quote(password, safe='')}@{spec.host}:{PORT}/{spec.database}"
    return {"DATABASE_URL": url, "PGHOST": spec.host, "PGPORT": str(PORT), "PGDATABASE": spec.database,
            "PGUSER": spec.user, "PGPASSWORD": password}


def dump_name(at: datetime) -> str:
    """A database dump's name: the Plane A archive form (`deploy-mcp-<UTC time>.dmcpbak`, which the backup
    targets list and prune), kept under the database's own prefix (`database_backup_prefix`) so it never mixes
    with the platform's own archives."""
    return f"deploy-mcp-{at:%Y%m%dT%H%M%S}.{at.microsecond // 1000:03d}Z.dmcpbak"


def database_backup_prefix(tenant: str, project: str, name: str) -> str:
    """Where a database's dumps go below the backup target: one place per database, so listing and retention
    see that database's dumps alone."""
    return f"databases/{tenant}/{project}/{name}"
