#!/usr/bin/env bash
# Multi-process scaling: N no-op tasks processed by 1, 2 and 4 worker processes (`soak work`,
# examples/soak.rs) on one store — a private redis-server, or one SQLite file — with the total
# rate and the CPU time per task of the store (redis-server) and of the workers.
#
#   benches/scale.sh [--stores redis,sqlite] [--tasks N] [--procs 1,2,4] [--concurrency C] [--runs R]
#
# Each run starts from an empty store, enqueues the N tasks in batches of 1,000 (untimed), then
# starts the worker processes at once and times until their record files hold N `done` lines
# (benches/scale_watch.py reads them every 5 ms; the processes' start-up is inside the time).
# Every task must have appended its `done n` line: the run fails otherwise. Workers run
# `--concurrency` tasks each and exit once the store is idle.
# Prints a markdown table (also written to target/scale/table.md) with one row per store and
# process count: the rates of the R runs, their median, and CPU per task (median run).
set -euo pipefail
cd "$(dirname "$0")/.."

STORES=redis,sqlite
TASKS=100000
PROCS=1,2,4
CONCURRENCY=64
RUNS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --stores) STORES=$2; shift 2 ;;
        --tasks) TASKS=$2; shift 2 ;;
        --procs) PROCS=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

OUT=${CARGO_TARGET_DIR:-target}/scale
mkdir -p "$OUT"
WORK=$(mktemp -d)
REDIS_PID=
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK" || true
}
trap cleanup EXIT

cargo build -q --release --example soak --features redis
SOAK=${CARGO_TARGET_DIR:-target}/release/examples/soak
TICK=$(getconf CLK_TCK)

# CPU seconds (user + system) of a running process, from /proc.
cpu_of() { awk -v t="$TICK" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }
now() { date +%s.%N; }

echo "machine: $(nproc) cores, $(uname -sr); load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/machine.txt"

if [[ ",$STORES," == *",redis,"* ]]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$PORT" --save '' --appendonly no --dir "$WORK" >/dev/null &
    REDIS_PID=$!
    for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
fi

# One timed run: prints "rate store_cpu_us worker_cpu_us".
run_once() { # store procs
    local store=$1 procs=$2 url
    case "$store" in
        redis) redis-cli -p "$PORT" flushall >/dev/null; url="redis://127.0.0.1:$PORT/0" ;;
        sqlite) rm -f "$WORK"/scale.db*; url="sqlite://$WORK/scale.db" ;;
    esac
    "$SOAK" "$url" enqueue --count "$TASKS" --batch 1000 >/dev/null
    rm -f "$WORK"/rec.* "$WORK"/time.*
    local store_cpu0=0
    [ "$store" = redis ] && store_cpu0=$(cpu_of "$REDIS_PID")
    local started pids=() i watcher
    python3 benches/scale_watch.py "$TASKS" "$procs" "$WORK" > "$WORK/ended" &
    watcher=$!
    started=$(now)
    for i in $(seq "$procs"); do
        /usr/bin/time -f "%U %S" -o "$WORK/time.$i" "$SOAK" "$url" work --concurrency "$CONCURRENCY" \
            --record "$WORK/rec.$i" --exit-when-idle-ms 200 >/dev/null 2>"$WORK/err.$i" &
        pids+=($!)
    done
    wait "$watcher"
    local ended store_cpu1=0
    ended=$(cat "$WORK/ended")
    [ "$store" = redis ] && store_cpu1=$(cpu_of "$REDIS_PID")
    for p in "${pids[@]}"; do wait "$p"; done
    local done_lines
    done_lines=$(cat "$WORK"/rec.* | sort -u | grep -c '^done ' || true)
    if [ "$done_lines" -ne "$TASKS" ]; then
        echo "$store, $procs processes: $done_lines of $TASKS tasks recorded" >&2
        cat "$WORK"/err.* >&2
        exit 1
    fi
    python3 - "$TASKS" "$started" "$ended" "$store_cpu0" "$store_cpu1" "$WORK"/time.* <<'EOF'
import sys
n, t0, t1, c0, c1 = int(sys.argv[1]), *map(float, sys.argv[2:6])
workers = 0.0
for path in sys.argv[6:]:
    with open(path) as f:
        user, system = f.read().split()[-2:]
        workers += float(user) + float(system)
print(f"{n / (t1 - t0):.0f} {(c1 - c0) * 1e6 / n:.1f} {workers * 1e6 / n:.1f}")
EOF
}

{
    echo "| store | worker processes | tasks/s (runs) | median | store CPU µs/task | workers CPU µs/task |"
    echo "| --- | ---: | --- | ---: | ---: | ---: |"
} > "$OUT/table.md"
IFS=, read -r -a stores <<<"$STORES"
IFS=, read -r -a counts <<<"$PROCS"
for store in "${stores[@]}"; do
    for procs in "${counts[@]}"; do
        results=()
        for _ in $(seq "$RUNS"); do
            results+=("$(run_once "$store" "$procs")")
            echo "  $store x$procs: ${results[-1]} (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        done
        printf '%s\n' "${results[@]}" | python3 -c '
import sys
store, procs = sys.argv[1], sys.argv[2]
runs = sorted((tuple(map(float, l.split())) for l in sys.stdin if l.strip()), key=lambda r: r[0])
mid = runs[len(runs) // 2]
rates = ", ".join(f"{r[0]:,.0f}" for r in runs)
store_cpu = f"{mid[1]:.1f}" if store == "redis" else "(in the workers)"
print(f"| {store} | {procs} | {rates} | {mid[0]:,.0f} | {store_cpu} | {mid[2]:.1f} |")
' "$store" "$procs" >> "$OUT/table.md"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
cat "$OUT/table.md"
