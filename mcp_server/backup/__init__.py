"""Plane A backups: `deploy-mcp backup create|list|restore|verify` (docs/operations.md#backups).

One archive per run holds the Postgres dump and the secrets keys, sealed with the operator's backup key
(`seal`: STREAM over ChaCha20-Poly1305, docs/decisions/0010-backup-format.md) in a framing of records
(`archive`), stored at a target (`targets`: a directory or S3); `postgres` runs pg_dump and pg_restore, and
`operations` puts them together and records every run in `backup_runs`.
"""
