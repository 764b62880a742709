-- Skiff PostgreSQL schema, version 2: the control plane.

-- Queues no consumer takes tasks from until they are resumed.
CREATE TABLE paused_queues (
    queue text PRIMARY KEY
);

-- Live workers: the newest heartbeat of each (msgpack WorkerStatus), believed until live_until.
CREATE TABLE workers (
    id         text   PRIMARY KEY,
    started_at bigint NOT NULL,
    live_until bigint NOT NULL,
    status     bytea  NOT NULL
);
CREATE INDEX workers_expiry ON workers (live_until);

-- Operators' requests to cancel a task, kept until `until`.
CREATE TABLE cancel_requests (
    id    uuid   PRIMARY KEY,
    until bigint NOT NULL
);
CREATE INDEX cancel_requests_expiry ON cancel_requests (until);

-- The newest progress a running task reported (msgpack), gone with its row.
ALTER TABLE tasks ADD COLUMN progress bytea;
