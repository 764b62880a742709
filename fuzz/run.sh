#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, two at a time, one job each.
#
#   ./run.sh [SECONDS]          # from fuzz/, or fuzz/run.sh from the repository root
#   TARGETS="cron_parse cli_id" ./run.sh 60
#
# Needs cargo-fuzz and a nightly toolchain. Each target starts from its committed corpus
# (fuzz/corpus/<target>, read only) and writes what it finds to fuzz/work/<target> (ignored by
# git); a crash is saved under fuzz/artifacts/<target>/ and its log under fuzz/logs/. Exits 1
# if any target found a crash, panic, timeout or out-of-memory. Not run by CI (too long).
set -uo pipefail

cd "$(dirname "$0")"
SECONDS_EACH="${1:-600}"
PARALLEL="${PARALLEL:-2}"
TARGETS="${TARGETS:-envelope_decode redis_stored_value store_url cron_parse cli_id}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

cargo +nightly fuzz build || exit 2
mkdir -p logs work

run_one() {
    local target="$1"
    mkdir -p "work/$target" "corpus/$target"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: over 2 GiB is a leak.
    cargo +nightly fuzz run "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"logs/$target.log" 2>&1
    local rc=$?
    local execs
    execs="$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "logs/$target.log" | grep -o '[0-9]*$' | tail -1)"
    if [ "$rc" -eq 0 ]; then
        echo "ok      $target: ${execs:-?} executions in ${SECONDS_EACH}s"
    else
        echo "FAILED  $target (exit $rc): see logs/$target.log and artifacts/$target/"
    fi
    return "$rc"
}

failed=0
running=0
for target in $TARGETS; do
    if [ "$running" -ge "$PARALLEL" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    run_one "$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done

if [ "$failed" -ne 0 ]; then
    echo "some targets found a problem" >&2
    exit 1
fi
echo "no findings"
