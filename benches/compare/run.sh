#!/usr/bin/env bash
# Skiff vs Huey on this machine, in one run: the same workloads on Huey (Redis and SQLite
# storage, thread workers) and on Skiff (the throughput bench's --json), with one private
# redis-server for both. Prints a markdown table (also written to target/compare/table.md).
#
#   benches/compare/run.sh [--tasks N] [--huey-tasks N] [--concurrency C]
#
# Needs python3 (with venv), pip access to PyPI and redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

TASKS=100000        # Skiff: tasks per phase
HUEY_TASKS=10000    # Huey is ~50x slower; fewer tasks keep the run short, rates are per second
CONCURRENCY=64
SAMPLES=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) TASKS=$2; shift 2 ;;
        --huey-tasks) HUEY_TASKS=$2; shift 2 ;;
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
cleanup() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK" || true
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check huey redis

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
URL="redis://127.0.0.1:$PORT/0"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)" | tee "$OUT/machine.txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

cargo bench -q --bench throughput --no-run 2>/dev/null || cargo bench --bench throughput --no-run

run_skiff() { # backend url
    cargo bench -q --bench throughput -- --backend "$1" --url "$2" --tasks "$TASKS" \
        --concurrency "$CONCURRENCY" --latency-samples "$SAMPLES" --json | tail -n 1
}
run_huey() { # storage
    "$VENV/bin/python" benches/compare/huey_bench.py --storage "$1" --url "$URL" \
        --path "$WORK/huey.db" --tasks "$HUEY_TASKS" --concurrency "$CONCURRENCY" \
        --latency-samples "$SAMPLES" | tail -n 1
}

echo "== huey redis";  run_huey redis | tee "$OUT/huey-redis.json"
redis-cli -p "$PORT" flushall >/dev/null
echo "== skiff redis"; run_skiff redis "$URL" | tee "$OUT/skiff-redis.json"
echo "== huey sqlite";  run_huey sqlite | tee "$OUT/huey-sqlite.json"
echo "== skiff sqlite"; run_skiff sqlite "sqlite://$WORK/skiff.db" | tee "$OUT/skiff-sqlite.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

python3 benches/compare/table.py "$OUT" | tee "$OUT/table.md"
