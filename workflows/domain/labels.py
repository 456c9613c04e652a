"""The label keys and values the platform puts on Kubernetes objects (tenant, project, app, release, build,
volume ...): one table, read by the renderers that set them, the adapters that select by them and the log
pipeline that copies them."""

from __future__ import annotations

MANAGED_BY = "deploy-mcp"
LABEL_TENANT = "deploy-mcp/tenant"
LABEL_PROJECT = "deploy-mcp/project"
LABEL_APP = "deploy-mcp/app"
LABEL_RELEASE = "deploy-mcp/release"
LABEL_DEPLOYMENT_ID = "deploy-mcp/deployment-id"
LABEL_COMMIT = "deploy-mcp/commit-sha"
LABEL_VOLUME = "deploy-mcp/volume"
LABEL_SNAPSHOT_KIND = "deploy-mcp/snapshot-kind"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_BUILD_ID = "deploy-mcp/build-id"
LABEL_STREAM = "deploy-mcp/stream"
STREAM_BUILD = "build"
LABEL_DATABASE = "deploy-mcp/database"
"""On a database's objects and pods; the project's catch-all ingress policy excludes pods carrying it, so only
the database's own NetworkPolicy decides who reaches them."""
LABEL_DATABASE_CLIENT = "deploy-mcp/database-client"
"""On the platform's own jobs that talk to one database (rotate, restore): its NetworkPolicy admits them."""
LABEL_ROLE = "deploy-mcp/role"
ROLE_DATABASE_BACKUP = "database-backup"
"""The platform namespace's database backup jobs carry `LABEL_ROLE: ROLE_DATABASE_BACKUP`."""
