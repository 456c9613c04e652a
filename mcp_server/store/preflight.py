"""The latest preflight result per worker host (`preflight_results`): written by the worker at start, read by
`whoami` for operators."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from mcp_server.store.pool import PgPool
from tools.records import PreflightSummary
from workflows.domain.preflight import PreflightReport


class PgPreflight(PgPool):
    async def record_preflight(self, host: str, report: PreflightReport) -> None:
        await self._all(
            "INSERT INTO preflight_results (host, ok, missing, warnings, results) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (host) DO UPDATE SET checked_at = now(), ok = EXCLUDED.ok, missing = EXCLUDED.missing, "
            "warnings = EXCLUDED.warnings, results = EXCLUDED.results RETURNING host",
            host, report.ok, len(report.missing), len(report.warnings),
            Jsonb([r.model_dump() for r in report.results]))

    async def latest_preflight(self) -> PreflightSummary | None:
        """The most recent result of any worker host."""
        row = await self._one("SELECT host, checked_at, ok, missing, warnings, results FROM preflight_results "
                              "ORDER BY checked_at DESC LIMIT 1")
        if row is None:
            return None
        missing = [f"{r['check']}: {r['detail']}" + (f" (fix: {r['fix']})" if r.get("fix") else "")
                   for r in row["results"] if r["status"] == "missing"]
        return PreflightSummary(host=row["host"], checked_at=row["checked_at"], ok=row["ok"],
                                missing_count=row["missing"], warning_count=row["warnings"], missing=missing)
