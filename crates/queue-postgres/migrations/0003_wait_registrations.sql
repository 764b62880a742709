-- Skiff PostgreSQL schema, version 3: who waits, so that writers notify only then.
--
-- A NOTIFY in a transaction takes one lock for the whole database cluster from its commit
-- until the commit is flushed: concurrent transactions that notify commit one after the
-- other, each waiting for its own WAL flush (no group commit). Writes therefore no longer
-- notify in their own statement. A wait that is about to sleep registers here first and then
-- looks for work (or its result) once more; a writer, AFTER its commit, reads these tables and
-- notifies only the queues and task ids someone waits for (a read and nothing else when nobody
-- waits). Either the waiter's second look sees the write, or the writer's read sees the
-- registration: no wake-up is lost.
--
-- Times are the server's clock (`now()`): both sides read the same one, and nothing but
-- wake-ups depends on them. Unlogged: no WAL; a crash empties them, and every wait registers
-- again when the store's listener reconnects.

-- Queues a consumer waits on, until when.
CREATE UNLOGGED TABLE work_waits (
    queue text        PRIMARY KEY,
    until timestamptz NOT NULL
);

-- Task ids a `wait_result` waits on, until when. A writer that stores the result deletes the
-- row as it notifies; rows of tasks that never finish are purged once expired, by later
-- registrations.
CREATE UNLOGGED TABLE result_waits (
    id    uuid        PRIMARY KEY,
    until timestamptz NOT NULL
);
CREATE INDEX result_waits_until ON result_waits (until);
