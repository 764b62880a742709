#!/usr/bin/env bash
# Skiff vs Huey and vs apalis-postgres on this machine, in one run: the same workloads on Huey
# (Redis and SQLite storage, thread workers), on apalis-postgres 1.x (benches/compare/apalis, a
# Cargo project of its own) and on Skiff (the throughput bench's --json), with one private
# redis-server for Skiff and Huey and one private PostgreSQL server for Skiff, apalis and
# pgbench (the one-row INSERT transaction, 1 and 16 clients). Prints a markdown table (also
# written to target/compare/table.md).
#
#   benches/compare/run.sh [--tasks N] [--huey-tasks N] [--apalis-tasks N] [--concurrency C]
#                          [--stores redis,sqlite,postgres]
#
# Needs python3 (with venv), pip access to PyPI, redis-server on PATH, and PostgreSQL's server
# binaries (initdb, pg_ctl, pgbench: `apt-get install postgresql`); as root the PostgreSQL
# server runs as the `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/../.."

TASKS=100000        # Skiff: tasks per phase
HUEY_TASKS=10000    # Huey is ~50x slower; fewer tasks keep the run short, rates are per second
APALIS_TASKS=20000  # apalis-postgres processes ~2,000/s
CONCURRENCY=64
SAMPLES=1000
STORES=redis,sqlite,postgres
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) TASKS=$2; shift 2 ;;
        --huey-tasks) HUEY_TASKS=$2; shift 2 ;;
        --apalis-tasks) APALIS_TASKS=$2; shift 2 ;;
        --stores) STORES=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --latency-samples) SAMPLES=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

OUT=target/compare
VENV=${VENV:-target/bench-venv}
mkdir -p "$OUT"
WORK=$(mktemp -d)
REDIS_PID=
PG_DATA=
has() { case ",$STORES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
as_pg() { # run a PostgreSQL binary as the server's user
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [ -n "$PG_DATA" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK" || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)" | tee "$OUT/machine.txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

cargo bench -q --bench throughput --features postgres --no-run 2>/dev/null \
    || cargo bench --bench throughput --features postgres --no-run

run_skiff() { # backend url
    cargo bench -q --bench throughput --features postgres -- --backend "$1" --url "$2" \
        --tasks "$TASKS" --concurrency "$CONCURRENCY" --latency-samples "$SAMPLES" --json | tail -n 1
}

if has postgres; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$PG_BIN/initdb" ] || PG_BIN=$(dirname "$(command -v initdb)")
    # apalis-postgres: its own Cargo project and target directory (never part of Skiff's builds).
    CARGO_TARGET_DIR=target/apalis-bench cargo build -q --release \
        --manifest-path benches/compare/apalis/Cargo.toml
    # One private server at PostgreSQL's default durability (fsync, synchronous_commit,
    # full_page_writes on), configured as the throughput bench's own private server.
    PG_DATA=$WORK/pg
    [ "$(id -u)" = 0 ] && chown postgres "$WORK"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    PG_PORT=$(free_port)
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg.log" -w -o "-p $PG_PORT \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=300 \
        -c max_wal_senders=0 -c wal_level=minimal -c shared_buffers=128MB" start >/dev/null
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "postgres: $("$PG_BIN/postgres" --version)" | tee -a "$OUT/machine.txt"
    # pgbench: a one-row INSERT transaction, from 1 and from 16 clients, 10 s each.
    PGB=(-h 127.0.0.1 -p "$PG_PORT" -U postgres)
    "$PG_BIN/psql" -q "${PGB[@]}" -c "CREATE TABLE pgbench_one (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int)" postgres
    echo "INSERT INTO pgbench_one (v) VALUES (1);" > "$WORK/insert.sql"
    pgbench_tps() { # clients
        "$PG_BIN/pgbench" -n "${PGB[@]}" -f "$WORK/insert.sql" -c "$1" -j "$(( $1 < 2 ? 1 : 2 ))" \
            -T 10 postgres 2>/dev/null | awk '/^tps/ {print $3}'
    }
    echo "== pgbench one-row INSERT"
    P1=$(pgbench_tps 1); P16=$(pgbench_tps 16)
    echo "{\"clients_1_per_s\": $P1, \"clients_16_per_s\": $P16}" | tee "$OUT/pgbench.json"
    echo "== apalis-postgres"
    target/apalis-bench/release/apalis-bench --url "$PG_URL" --tasks "$APALIS_TASKS" \
        --enqueue-calls 5000 --concurrency "$CONCURRENCY" --latency-samples "$SAMPLES" | tail -n 1 | tee "$OUT/apalis-postgres.json"
    echo "== skiff postgres"; run_skiff postgres "$PG_URL" | tee "$OUT/skiff-postgres.json"
fi

if has redis || has sqlite; then
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# Pinned, so that BENCHMARKS.md names the version that ran (the current release).
HUEY_VERSION=3.5.4
"$VENV/bin/pip" install -q --disable-pip-version-check "huey==$HUEY_VERSION" redis

PORT=$(free_port)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
URL="redis://127.0.0.1:$PORT/0"

run_huey() { # storage
    "$VENV/bin/python" benches/compare/huey_bench.py --storage "$1" --url "$URL" \
        --path "$WORK/huey.db" --tasks "$HUEY_TASKS" --concurrency "$CONCURRENCY" \
        --latency-samples "$SAMPLES" | tail -n 1
}

if has redis; then
    echo "== huey redis";  run_huey redis | tee "$OUT/huey-redis.json"
    redis-cli -p "$PORT" flushall >/dev/null
    echo "== skiff redis"; run_skiff redis "$URL" | tee "$OUT/skiff-redis.json"
fi
if has sqlite; then
    echo "== huey sqlite";  run_huey sqlite | tee "$OUT/huey-sqlite.json"
    echo "== skiff sqlite"; run_skiff sqlite "sqlite://$WORK/skiff.db" | tee "$OUT/skiff-sqlite.json"
fi
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 benches/compare/table.py "$OUT" "$STORES" | tee "$OUT/table.md"
