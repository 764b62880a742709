-- Skiff PostgreSQL schema, version 4: lapsed revocations are purged by a range read of this
-- index (a bounded number per call) instead of a scan of every revocation.
CREATE INDEX revocations_until ON revocations (until) WHERE until IS NOT NULL;
