#!/usr/bin/env bash
# Skiff vs Huey and vs apalis 1.0 on this machine, in one run: the same workloads on Huey
# (RedisHuey and SqliteHuey; its processing phase swept over thread and process workers, the
# best reported), on apalis 1.0 (apalis-redis, apalis-sqlite, apalis-postgres:
# benches/compare/apalis, a Cargo project of its own) and on Skiff (the throughput bench's
# --json). Every store is shared by the three in the same run:
#
#   redis        one private redis-server, no persistence
#   redis-aof    a second private redis-server with AOF, `appendfsync everysec`
#   sqlite       one file per framework, WAL, `synchronous=NORMAL` on every connection
#                (Skiff's default; Huey through a subclass, it has no option for NORMAL)
#   sqlite-full  the same at `synchronous=FULL` (Skiff `?synchronous=full`, Huey `fsync=True`)
#   postgres     one private PostgreSQL server (default durability) for Skiff, apalis and
#                pgbench (the one-row INSERT transaction, 1 and 16 clients, then 1 client
#                again after Skiff's run); no Huey row
#
# Prints markdown tables (also written to target/compare/table.md).
#
#   benches/compare/run.sh [--tasks N] [--huey-tasks N] [--apalis-tasks N] [--concurrency C]
#                          [--latency-samples N] [--stores redis,redis-aof,sqlite,sqlite-full,postgres]
#                          [--huey-sweep thread:1,thread:8,thread:64,process:1,process:8,process:64]
#                          [--huey-xproc-workers N] [--no-apalis]
#
# Needs python3 (with venv), pip access to PyPI, redis-server on PATH, and PostgreSQL's server
# binaries (initdb, pg_ctl, pgbench: `apt-get install postgresql`); as root the PostgreSQL
# server runs as the `postgres` user. The apalis project builds in
# ${CARGO_TARGET_DIR:-target}/apalis-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."

TASKS=100000        # Skiff: tasks per phase
HUEY_TASKS=10000    # Huey is ~50x slower; fewer tasks keep the run short, rates are per second
APALIS_TASKS=20000  # apalis processes ~2,000-5,000/s
CONCURRENCY=64
SAMPLES=1000
STORES=redis,redis-aof,sqlite,sqlite-full,postgres
# Huey's processing phase once per consumer configuration (huey_consumer -k thread|process -w N)
HUEY_SWEEP=thread:1,thread:8,thread:64,process:1,process:8,process:64
HUEY_XPROC=8        # worker processes for Huey's cross-process pickup latency (0: skip)
APALIS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) TASKS=$2; shift 2 ;;
        --huey-tasks) HUEY_TASKS=$2; shift 2 ;;
        --apalis-tasks) APALIS_TASKS=$2; shift 2 ;;
        --stores) STORES=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --latency-samples) SAMPLES=$2; shift 2 ;;
        --huey-sweep) HUEY_SWEEP=$2; shift 2 ;;
        --huey-xproc-workers) HUEY_XPROC=$2; shift 2 ;;
        --no-apalis) APALIS=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

OUT=target/compare
VENV=${VENV:-target/bench-venv}
mkdir -p "$OUT"
WORK=$(mktemp -d)
REDIS_PID=
REDIS_AOF_PID=
PG_DATA=
has() { case ",$STORES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
as_pg() { # run a PostgreSQL binary as the server's user
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    for pid in $REDIS_PID $REDIS_AOF_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_DATA" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK" || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)" | tee "$OUT/machine.txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "redis-server: $(redis-server --version | awk '{print $3}'), python: $(python3 --version)" \
    | tee -a "$OUT/machine.txt"
rm -f "$OUT"/*.json

cargo bench -q --bench throughput --features postgres --no-run 2>/dev/null \
    || cargo bench --bench throughput --features postgres --no-run

run_skiff() { # backend url
    cargo bench -q --bench throughput --features postgres -- --backend "$1" --url "$2" \
        --tasks "$TASKS" --concurrency "$CONCURRENCY" --latency-samples "$SAMPLES" --json | tail -n 1
}

# apalis 1.0: its own Cargo project and target directory (never part of Skiff's builds).
APALIS_TARGET=${CARGO_TARGET_DIR:-target}/apalis-bench
if [ "$APALIS" = 1 ]; then
    CARGO_TARGET_DIR=$APALIS_TARGET cargo build -q --release \
        --manifest-path benches/compare/apalis/Cargo.toml
fi
# apalis's settings (see benches/compare/apalis/src/main.rs): `.concurrency(64)` +
# `.parallelize(tokio::spawn)`, `Config::batch_size(100)` (default 10), `lock_tasks(false)`,
# results persisted, pool of 16; the latency worker is woken by apalis's own notifications
# with a 100 ms poll behind them.
run_apalis() { # backend url [more flags]
    local backend=$1 url=$2; shift 2
    "$APALIS_TARGET/release/apalis-bench" --backend "$backend" --url "$url" \
        --tasks "$APALIS_TASKS" --enqueue-calls 5000 --concurrency "$CONCURRENCY" \
        --batch-size 100 --lock-tasks false --pool-size 16 \
        --latency-samples "$SAMPLES" "$@" | tail -n 1
}

if has postgres; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$PG_BIN/initdb" ] || PG_BIN=$(dirname "$(command -v initdb)")
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
    if [ "$APALIS" = 1 ]; then
        echo "== apalis postgres"; run_apalis postgres "$PG_URL" | tee "$OUT/apalis-postgres.json"
    fi
    echo "== skiff postgres"; run_skiff postgres "$PG_URL" | tee "$OUT/skiff-postgres.json"
    # One client again, on the server as the runs above left it (its tables, WAL and
    # checkpoints): Skiff's one producer is compared with both.
    echo "== pgbench one-row INSERT, 1 client, after"
    P1_AFTER=$(pgbench_tps 1)
    echo "{\"clients_1_per_s\": $P1, \"clients_16_per_s\": $P16, \"clients_1_after_per_s\": $P1_AFTER}" \
        | tee "$OUT/pgbench.json"
fi

if has redis || has redis-aof || has sqlite || has sqlite-full; then
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# Pinned, so that BENCHMARKS.md names the version that ran (the current release).
HUEY_VERSION=3.5.4
"$VENV/bin/pip" install -q --disable-pip-version-check "huey==$HUEY_VERSION" redis

start_redis() { # dir [more redis-server flags]; sets PORT_STARTED and STARTED_PID
    local dir=$1; shift
    mkdir -p "$dir"
    PORT_STARTED=$(free_port)
    redis-server --port "$PORT_STARTED" --bind 127.0.0.1 --save "" --dir "$dir" \
        --logfile "$dir/redis.log" "$@" &
    STARTED_PID=$!
    for _ in $(seq 50); do
        redis-cli -p "$PORT_STARTED" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
}

run_huey() { # storage store-name [more flags]
    local storage=$1 name=$2; shift 2
    "$VENV/bin/python" benches/compare/huey_bench.py --storage "$storage" \
        --path "$WORK/huey-$name.db" --tasks "$HUEY_TASKS" --concurrency "$CONCURRENCY" \
        --latency-samples "$SAMPLES" --sweep "$HUEY_SWEEP" --xproc-workers "$HUEY_XPROC" \
        "$@" | tail -n 1
}

run_redis() { # store-name url
    local name=$1 url=$2
    echo "== huey $name";  run_huey redis "$name" --url "$url" | tee "$OUT/huey-$name.json"
    redis-cli -u "$url" flushall >/dev/null
    if [ "$APALIS" = 1 ]; then
        echo "== apalis $name"; run_apalis redis "$url" | tee "$OUT/apalis-$name.json"
        redis-cli -u "$url" flushall >/dev/null
    fi
    echo "== skiff $name"; run_skiff redis "$url" | tee "$OUT/skiff-$name.json"
    redis-cli -u "$url" flushall >/dev/null
}

run_sqlite() { # store-name synchronous
    local name=$1 sync=$2 skiff_url="sqlite://$WORK/skiff-$1.db"
    [ "$sync" = full ] && skiff_url="$skiff_url?synchronous=full"
    echo "== huey $name";  run_huey sqlite "$name" --synchronous "$sync" | tee "$OUT/huey-$name.json"
    if [ "$APALIS" = 1 ]; then
        echo "== apalis $name"
        run_apalis sqlite "sqlite://$WORK/apalis-$name.db" --synchronous "$sync" \
            | tee "$OUT/apalis-$name.json"
    fi
    echo "== skiff $name"; run_skiff sqlite "$skiff_url" | tee "$OUT/skiff-$name.json"
}

if has redis; then
    start_redis "$WORK/redis" --appendonly no
    REDIS_PID=$STARTED_PID
    run_redis redis "redis://127.0.0.1:$PORT_STARTED/0"
fi
if has redis-aof; then
    # The same server binary with AOF on, fsync once a second, for all three.
    start_redis "$WORK/redis-aof" --appendonly yes --appendfsync everysec
    REDIS_AOF_PID=$STARTED_PID
    echo "redis-aof: $(redis-cli -p "$PORT_STARTED" config get appendfsync | tr '\n' ' ')" \
        | tee -a "$OUT/machine.txt"
    run_redis redis-aof "redis://127.0.0.1:$PORT_STARTED/0"
fi
if has sqlite; then run_sqlite sqlite normal; fi
if has sqlite-full; then run_sqlite sqlite-full full; fi
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 benches/compare/table.py "$OUT" "$STORES" | tee "$OUT/table.md"
