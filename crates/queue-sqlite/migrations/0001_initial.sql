-- Skiff SQLite schema, version 1.
--
-- All times are milliseconds since the Unix epoch, taken from the store's Clock and bound as
-- parameters; SQLite's own clock is never read.

-- One row per pending task (ready, scheduled or leased). A task leaves this table when its
-- outcome is written (success, drop, dead-letter); retries and defers update it in place.
CREATE TABLE tasks (
    seq            INTEGER PRIMARY KEY,  -- rowid: enqueue order, FIFO within a priority
    id             BLOB    NOT NULL,     -- TaskId, 16 bytes
    queue          TEXT    NOT NULL,
    priority       INTEGER NOT NULL,     -- higher first
    state          INTEGER NOT NULL,     -- 0 ready, 1 scheduled (eta in the future), 2 leased
    run_at         INTEGER NOT NULL,     -- when it is (or was) due
    wake_at        INTEGER NOT NULL,     -- scheduled: run_at; leased: lease expiry
    lease_token    INTEGER,              -- fencing token of the current delivery (leased only)
    deliveries     INTEGER NOT NULL,
    attempts       INTEGER NOT NULL,
    max_deliveries INTEGER NOT NULL,     -- Envelope::delivery_limit() at enqueue
    unique_key     TEXT,
    raw            BLOB    NOT NULL      -- the msgpack envelope (last: keeps hot columns inline)
);

-- Lookups by id (complete, extend, reschedule, get_task) and duplicate ids at enqueue.
CREATE UNIQUE INDEX tasks_id ON tasks (id);
-- At most one pending or leased task per unique key; enqueue is ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
-- The claim: due tasks of a queue in delivery order (priority desc, then enqueue order).
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq) WHERE state = 0;
-- Timers: scheduled tasks becoming due and leases running out, earliest first.
CREATE INDEX tasks_timer ON tasks (queue, wake_at) WHERE state <> 0;

-- Results of finished tasks (msgpack StoredResult), kept until expires_at (NULL = forever).
CREATE TABLE results (
    id         BLOB PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX results_expiry ON results (expires_at) WHERE expires_at IS NOT NULL;

-- The dead-letter queue.
CREATE TABLE dead (
    seq       INTEGER PRIMARY KEY,
    id        BLOB    NOT NULL UNIQUE,
    queue     TEXT    NOT NULL,
    task      TEXT    NOT NULL,          -- "?" when the envelope does not decode
    kind      TEXT    NOT NULL,          -- FailureKind, for people reading the table
    failure   BLOB    NOT NULL,          -- msgpack StoredResult::Failure
    failed_at INTEGER NOT NULL,
    raw       BLOB    NOT NULL
);
CREATE INDEX dead_by_queue ON dead (queue, failed_at);

-- Locks with owner and expiry.
CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Fixed-window rate-limit counters.
CREATE TABLE rates (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    hits         INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Revocations: kind 0 = by task id (target = hyphenated id), 1 = by task name.
CREATE TABLE revocations (
    kind      INTEGER NOT NULL,
    target    TEXT    NOT NULL,
    until     INTEGER,
    once      INTEGER NOT NULL,
    PRIMARY KEY (kind, target)
) WITHOUT ROWID;
