-- Custom domains, written at last (0001's table was never written): one row per hostname, so a hostname belongs
-- to one app of one tenant. A claim that failed (or whose verification deadline passed) is taken over by the
-- next app that adds the name; a live one refuses it. Statuses: docs/tools/domains.md.
UPDATE domains SET status = 'pending_dns' WHERE status = 'pending';
ALTER TABLE domains
    ALTER COLUMN status SET DEFAULT 'pending_dns',
    ADD COLUMN detail          text,          -- pending_dns: what is missing; failed: the DNS or ACME reason
    ADD COLUMN fix             text,          -- the owner's next step
    ADD COLUMN verify_deadline timestamptz,   -- unverified past this: failed
    ADD COLUMN verified_at     timestamptz,
    ADD COLUMN checked_at      timestamptz,   -- the last DNS check
    ADD COLUMN cert_not_after  timestamptz,   -- the certificate's expiry, as cert-manager reports it
    ADD COLUMN workflow_id     text,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT domains_status CHECK (status IN ('pending_dns', 'verifying', 'issuing', 'active', 'failed')),
    ADD CONSTRAINT domains_hostname_lower CHECK (hostname = lower(hostname) AND hostname !~ '^\*');
CREATE INDEX domains_app ON domains (app_id);
