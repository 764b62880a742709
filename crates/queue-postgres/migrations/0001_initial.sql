-- Skiff PostgreSQL schema, version 1.
--
-- Runs with `search_path` set to the store's schema (default `skiff`), so every name below
-- lands there. All times are milliseconds since the Unix epoch, taken from the store's Clock
-- and bound as parameters; the server's clock is never read.

-- One row per pending task (ready, scheduled or leased). A task leaves this table when its
-- outcome is written (success, drop, dead-letter): finished tasks leave no rows behind, so the
-- claim's index only ever holds pending work. Retries and deferrals update the row in place.
CREATE TABLE tasks (
    id             uuid     PRIMARY KEY,
    seq            bigint   GENERATED ALWAYS AS IDENTITY,  -- enqueue order: FIFO within a priority
    queue          text     NOT NULL,
    task           text     NOT NULL,   -- the task name ("?" for rows that do not decode)
    priority       smallint NOT NULL,   -- higher first
    state          smallint NOT NULL,   -- 0 ready, 1 scheduled (eta in the future), 2 leased
    run_at         bigint   NOT NULL,   -- when it is (or was) due
    wake_at        bigint   NOT NULL,   -- scheduled: run_at; leased: lease expiry
    lease_token    bigint,              -- fencing token of the current delivery (leased only)
    deliveries     integer  NOT NULL,
    attempts       integer  NOT NULL,
    max_deliveries integer  NOT NULL,   -- Envelope::delivery_limit() at enqueue
    unique_key     text,
    raw            bytea    NOT NULL    -- the msgpack envelope
) WITH (
    -- Rows come and go all the time: let autovacuum clean up after a few percent of churn
    -- instead of the default 20%, so dead tuples never pile up in front of the claim.
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.05
);

-- At most one pending or leased task per unique key; enqueue is ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key) WHERE unique_key IS NOT NULL;
-- The claim: due tasks of a queue in delivery order (priority desc, then enqueue order).
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq) WHERE state = 0;
-- Timers: scheduled tasks becoming due and leases running out, earliest first.
CREATE INDEX tasks_timer ON tasks (queue, wake_at) WHERE state <> 0;

-- Results of finished tasks (msgpack StoredResult), kept until expires_at (NULL = forever).
CREATE TABLE results (
    id         uuid   PRIMARY KEY,
    value      bytea  NOT NULL,
    expires_at bigint
);
CREATE INDEX results_expiry ON results (expires_at) WHERE expires_at IS NOT NULL;

-- The dead-letter queue.
CREATE TABLE dead (
    id        uuid   PRIMARY KEY,
    seq       bigint GENERATED ALWAYS AS IDENTITY,
    queue     text   NOT NULL,
    task      text   NOT NULL,   -- "?" when the envelope does not decode
    kind      text   NOT NULL,   -- FailureKind, for people reading the table
    failure   bytea  NOT NULL,   -- msgpack StoredResult::Failure
    failed_at bigint NOT NULL,
    raw       bytea  NOT NULL
);
CREATE INDEX dead_by_time ON dead (failed_at, seq);
CREATE INDEX dead_by_queue ON dead (queue, failed_at, seq);

-- Locks with owner and expiry (also the periodic scheduler's claims of fire times).
CREATE TABLE locks (
    name       text   PRIMARY KEY,
    owner      text   NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX locks_expiry ON locks (expires_at);

-- Fixed-window rate-limit counters.
CREATE TABLE rates (
    key          text    PRIMARY KEY,
    window_start bigint  NOT NULL,
    hits         integer NOT NULL,
    expires_at   bigint  NOT NULL
);
CREATE INDEX rates_expiry ON rates (expires_at);

-- Revocations: kind 0 = by task id (target = hyphenated id), 1 = by task name.
CREATE TABLE revocations (
    kind   smallint NOT NULL,
    target text     NOT NULL,
    until  bigint,
    once   boolean  NOT NULL,
    PRIMARY KEY (kind, target)
);
