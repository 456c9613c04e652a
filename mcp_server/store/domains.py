"""Custom domains of apps: the claim of a hostname, its verification token and the status the domain workflow
records as it goes (pending_dns, verifying, issuing, active, failed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from mcp_server.store.pool import PgPool
from tools.ports import RecordConflict
from tools.records import DomainRecord
from workflows.domain.domain_contract import DomainClaimState

DOMAIN_SELECT = """
SELECT d.*, a.name AS app, p.name AS project, p.namespace, t.name AS tenant
FROM domains d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id
JOIN tenants t ON t.id = p.tenant_id
"""
_STATUS_FIELDS = {"status", "detail", "fix", "verified_at", "checked_at", "cert_not_after", "workflow_id",
                  "verify_deadline"}


class PgDomains(PgPool):
    async def add_domain(self, app_id: UUID, hostname: str, token: str, deadline: datetime,
                         tls_secret: str) -> tuple[DomainRecord, bool]:
        """(domain, created). The app's own claim of `hostname` is returned as is. Another app's unverified claim
        that failed or whose verification deadline passed is taken over (new token, so the old owner's TXT record
        proves nothing); a live one raises RecordConflict("domain")."""
        async with self._transaction() as conn:
            cur = await conn.execute("SELECT * FROM domains WHERE hostname = %s FOR UPDATE", (hostname,))
            row = await cur.fetchone()
            if row is not None and row["app_id"] == app_id:
                created = False
            elif row is not None:
                # a claim once verified is never taken over (its owner proved control; its objects live in its
                # app's namespace); an unverified one lapses when it failed or its deadline passed
                expired = row["verified_at"] is None and (row["status"] == "failed" or (
                    row["verify_deadline"] is not None
                    and row["verify_deadline"] < datetime.now(row["verify_deadline"].tzinfo)))
                if not expired:
                    raise RecordConflict("domain", hostname)
                await conn.execute(
                    "UPDATE domains SET app_id = %s, status = 'verifying', verification_token = %s, detail = NULL, "
                    "fix = NULL, verify_deadline = %s, verified_at = NULL, checked_at = NULL, cert_not_after = NULL, "
                    "workflow_id = NULL, tls_secret = %s, created_at = now(), updated_at = now() WHERE id = %s",
                    (app_id, token, deadline, tls_secret, row["id"]))
                created = True
            else:
                await conn.execute(
                    "INSERT INTO domains (app_id, hostname, kind, status, verification_token, verify_deadline, "
                    "tls_secret) VALUES (%s, %s, 'custom', 'verifying', %s, %s, %s)",
                    (app_id, hostname, token, deadline, tls_secret))
                created = True
        found = await self.domain_by_hostname(hostname)
        assert found is not None
        return found, created

    async def domain_by_hostname(self, hostname: str) -> DomainRecord | None:
        row = await self._one(DOMAIN_SELECT + "WHERE d.hostname = %s", hostname)
        return DomainRecord.model_validate(row) if row else None

    async def get_domain(self, tenant: str, hostname: str) -> DomainRecord | None:
        row = await self._one(DOMAIN_SELECT + "WHERE t.name = %s AND d.hostname = %s AND a.deleted_at IS NULL",
                              tenant, hostname)
        return DomainRecord.model_validate(row) if row else None

    async def get_domain_by_id(self, domain_id: UUID) -> DomainRecord | None:
        row = await self._one(DOMAIN_SELECT + "WHERE d.id = %s", domain_id)
        return DomainRecord.model_validate(row) if row else None

    async def list_domains(self, tenant: str, project: str | None, app: str | None) -> list[DomainRecord]:
        rows = await self._all(
            DOMAIN_SELECT + "WHERE t.name = %s AND (%s::text IS NULL OR p.name = %s) AND (%s::text IS NULL OR "
            "a.name = %s) AND a.deleted_at IS NULL AND d.kind = 'custom' ORDER BY p.name, a.name, d.hostname",
            tenant, project, project, app, app)
        return [DomainRecord.model_validate(r) for r in rows]

    async def domains_of_apps(self, app_ids: list[UUID]) -> dict[UUID, list[DomainRecord]]:
        rows = await self._all(DOMAIN_SELECT + "WHERE d.app_id = ANY(%s) AND d.kind = 'custom' ORDER BY d.hostname",
                               app_ids)
        out: dict[UUID, list[DomainRecord]] = {}
        for r in rows:
            d = DomainRecord.model_validate(r)
            out.setdefault(d.app_id, []).append(d)
        return out

    async def set_domain_status(self, domain_id: UUID, token: str, **fields: Any) -> bool:
        """Update the claim still holding `token` (a claim taken over meanwhile is not touched: False)."""
        if not fields or set(fields) - _STATUS_FIELDS:
            raise ValueError(f"set_domain_status takes {sorted(_STATUS_FIELDS)}")
        sets = ", ".join(f"{k} = %s" for k in fields)  # keys from the allow-list above, never from callers' data
        row = await self._one(f"UPDATE domains SET {sets}, updated_at = now() WHERE id = %s "
                              "AND verification_token = %s RETURNING id", *fields.values(), domain_id, token)
        return row is not None

    async def remove_domain(self, domain_id: UUID, token: str) -> None:
        await self._one("DELETE FROM domains WHERE id = %s AND verification_token = %s RETURNING id",
                        domain_id, token)

    async def domain_claim_state(self, domain_id: UUID, token: str) -> DomainClaimState:
        row = await self._one("SELECT verified_at FROM domains WHERE id = %s AND verification_token = %s",
                              domain_id, token)
        return DomainClaimState(exists=row is not None, verified_at=row["verified_at"] if row else None)
