-- Skiff SQLite schema, version 3: the control plane.

-- Queues no consumer takes tasks from until they are resumed.
CREATE TABLE paused_queues (
    queue TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Live workers: the newest heartbeat of each (msgpack WorkerStatus), believed until live_until.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    live_until INTEGER NOT NULL,
    status     BLOB    NOT NULL
) WITHOUT ROWID;

-- Operators' requests to cancel a task, kept until `until`.
CREATE TABLE cancel_requests (
    id    BLOB PRIMARY KEY,
    until INTEGER NOT NULL
) WITHOUT ROWID;

-- The newest progress a running task reported (msgpack), gone with its row.
ALTER TABLE tasks ADD COLUMN progress BLOB;
