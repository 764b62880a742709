#!/usr/bin/env bash
# What the PostgreSQL server alone can do of Skiff's processing work, with no client work at
# all: pgbench runs Skiff's claim (the statement `CLAIM` of crates/queue-postgres/src/fetch.rs,
# through the store's own `claim_ready` function, committed) and then a completion of the
# claimed rows (deleted, a result stored for each: the least `COMPLETE` does for a task that
# succeeded), B tasks per statement, from 1 and 2 clients, on a queue of N waiting tasks in
# Skiff's own schema. A bound for issue 14's "≥ 10× apalis-postgres": Skiff cannot process
# faster than the server does this work.
#
#   benches/pg_ceiling.sh [--url URL] [--tasks N] [--batch B] [--clients 1,2] [--seconds S]
#
# Without --url, a private server (initdb + pg_ctl in a temp dir, default durability, as
# benches/compare/run.sh starts it). The schema is made by the throughput harness
# (`--namespace skiff_ceiling`, every phase skipped), then filled with N rows of 80-byte
# envelopes by one INSERT. Prints one line per client count: transactions/s and tasks/s.
set -euo pipefail
cd "$(dirname "$0")/.."

URL=
TASKS=1500000
BATCH=128
CLIENTS=1,2
SECONDS_EACH=8
while [ $# -gt 0 ]; do
    case "$1" in
        --url) URL=$2; shift 2 ;;
        --tasks) TASKS=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --seconds) SECONDS_EACH=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/pgbench" ] || PG_BIN=$(dirname "$(command -v pgbench)")
WORK=$(mktemp -d)
PG_DATA=
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; else "$@"; fi; }
cleanup() {
    if [ -n "$PG_DATA" ]; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$URL" ]; then
    [ "$(id -u)" = 0 ] && chown postgres "$WORK"
    PG_DATA=$WORK/pg
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg.log" -w -o "-p $PORT \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300 \
        -c max_wal_senders=0 -c wal_level=minimal -c shared_buffers=128MB" start >/dev/null
    URL="postgres://postgres@127.0.0.1:$PORT/postgres"
fi

S=skiff_ceiling
# Skiff's schema, made by the store itself (its migrations), then emptied by the harness.
cargo bench -q --bench throughput --features postgres -- --backend postgres --url "$URL" \
    --namespace "$S" --tasks 1 --skip enqueue,concurrent,batch,process,latency,xproc --json \
    >/dev/null
psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$URL" "$@"; }
psql -c "TRUNCATE $S.tasks, $S.results"
psql -c "INSERT INTO $S.tasks (id, queue, task, priority, state, run_at, wake_at, deliveries,
             attempts, max_deliveries, raw)
         SELECT gen_random_uuid(), 'ceiling', 'noop', 0, 0, 0, 0, 0, 0, 3,
                decode(repeat('ab', 80), 'hex')
         FROM generate_series(1, $TASKS)"
psql -c "VACUUM ANALYZE $S.tasks"

# One pgbench transaction: the claim (Skiff's statement, its parameters as literals: `now` 0,
# so no scheduled or expired task is due; the lease's expiry and token base a value of this
# iteration's own), committed; then the completion of exactly the rows it claimed, found by
# that expiry through the timer index, as its own commit.
cat > "$WORK/cycle.sql" <<SQL
\set until random(1000000000000, 9000000000000)
WITH ready AS MATERIALIZED (
    SELECT id, priority, seq FROM $S.claim_ready('ceiling', $BATCH)
), due AS MATERIALIZED (
    SELECT id, priority, seq FROM $S.tasks
    WHERE queue = 'ceiling' AND state <> 0 AND wake_at <= 0
      AND NOT EXISTS (SELECT 1 FROM $S.paused_queues WHERE queue = 'ceiling')
    ORDER BY wake_at
    LIMIT $BATCH
    FOR UPDATE SKIP LOCKED
), pick AS MATERIALIZED (
    SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c
    ORDER BY priority DESC, seq
    LIMIT $BATCH
), claimed AS (
    UPDATE $S.tasks t
    SET state = 2, lease_token = :until # t.seq, wake_at = :until, deliveries = t.deliveries + 1
    WHERE t.id = ANY (ARRAY (SELECT id FROM pick))
    RETURNING t.id, t.seq, t.priority, t.deliveries, t.attempts, t.max_deliveries,
              t.lease_token, t.raw
)
SELECT count(*), EXISTS (SELECT 1 FROM $S.revocations) FROM claimed;
WITH gone AS (
    DELETE FROM $S.tasks WHERE queue = 'ceiling' AND state <> 0 AND wake_at = :until
    RETURNING id
)
INSERT INTO $S.results (id, value, expires_at) SELECT id, '\\x90'::bytea, NULL FROM gone;
SQL

echo "pg_ceiling: $TASKS tasks waiting, $BATCH per statement, ${SECONDS_EACH} s per client count; load $(cut -d' ' -f1-3 /proc/loadavg)"
for c in ${CLIENTS//,/ }; do
    tps=$("$PG_BIN/pgbench" -n -f "$WORK/cycle.sql" -c "$c" -j "$c" -T "$SECONDS_EACH" "$URL" 2>/dev/null \
        | awk '/^tps/ {print $3}')
    left=$(psql -At -c "SELECT count(*) FROM $S.tasks WHERE state = 0")
    [ "$left" -gt 0 ] || { echo "the queue ran dry: use more --tasks" >&2; exit 1; }
    awk -v c="$c" -v tps="$tps" -v b="$BATCH" -v left="$left" \
        'BEGIN { printf "clients %d: %.0f cycles/s, %.0f tasks/s (%d tasks left)\n", c, tps, tps * b, left }'
done
