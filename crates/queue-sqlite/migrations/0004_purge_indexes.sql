-- Skiff SQLite schema, version 4: `purge_expired` reads expiry indexes.
--
-- Locks, rate counters and revocations with an end are purged by a range read of these
-- indexes (a bounded number per call), instead of a scan of every row.
CREATE INDEX locks_expiry ON locks (expires_at);
CREATE INDEX rates_expiry ON rates (expires_at);
CREATE INDEX revocations_until ON revocations (until) WHERE until IS NOT NULL;
