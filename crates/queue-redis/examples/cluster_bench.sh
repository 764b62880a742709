#!/bin/bash
# Throughput of the Redis store on a 3-master Redis Cluster (no replicas) with its queues on
# 1, 2 and 3 masters (one queue per master), with each master's CPU time and Redis CPU per
# task (enqueue + fetch + complete). Figures: NOTES.md, "Redis Cluster (issue 15): state".
#
#   cargo build --release -p queue-redis --example redis_throughput --features testing
#   crates/queue-redis/examples/cluster_bench.sh target/release/examples/redis_throughput 60000
#
# Starts redis-server on ports 27101-27103 in a temporary directory and stops them at the end.
set -e
BIN=$(realpath "$1"); N=${2:-60000}
DIR=$(mktemp -d)
cd "$DIR"
for p in 27101 27102 27103; do
  rm -rf $p; mkdir $p
  redis-server --port $p --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf --save "" --appendonly no --daemonize yes --dir "$DIR/$p" --logfile redis.log
done
sleep 0.5
redis-cli --cluster create 127.0.0.1:27101 127.0.0.1:27102 127.0.0.1:27103 --cluster-replicas 0 --cluster-yes > create.log 2>&1
until [ "$(redis-cli -p 27101 cluster info | grep -c cluster_state:ok)" = 1 ] && [ "$(redis-cli -p 27102 cluster info | grep -c cluster_state:ok)" = 1 ] && [ "$(redis-cli -p 27103 cluster info | grep -c cluster_state:ok)" = 1 ]; do sleep 0.2; done
sleep 1
# A queue per master: the first qN whose hash tag the master owns (a master answers a key of
# another master's slots with MOVED).
declare -A Q
for i in $(seq 0 200); do
  for p in 27101 27102 27103; do
    if [ -z "${Q[$p]}" ] && redis-cli -p $p exists "{q$i}:probe" | grep -qx '[0-9][0-9]*'; then
      Q[$p]="q$i"
    fi
  done
  [ ${#Q[@]} = 3 ] && break
done
qs=("${Q[27101]}" "${Q[27102]}" "${Q[27103]}")
cpu() { redis-cli -p $1 info cpu | grep -E "used_cpu_(sys|user):" | cut -d: -f2 | tr -d '\r' | paste -sd+ | bc; }
for k in 1 2 3; do
  list=$(IFS=,; echo "${qs[*]:0:$k}")
  declare -A before
  for p in 27101 27102 27103; do before[$p]=$(cpu $p); done
  out=$($BIN redis+cluster://127.0.0.1:27101/ $N 200 $list)
  line="queues on $k master(s) [$list]: $(echo "$out" | grep -oE '^(enqueue|process): [0-9]+ tasks in [^=]+= [0-9]+/s' | sed 's/ tasks in [^=]*=//' | paste -sd' ')"
  total=0
  for p in 27101 27102 27103; do
    d=$(echo "$(cpu $p) - ${before[$p]}" | bc); total=$(echo "$total + $d" | bc)
    line="$line | $p cpu ${d}s"
  done
  echo "$line | redis cpu per task $(echo "$total*1000000/$N" | bc) us"
done
for p in 27101 27102 27103; do redis-cli -p $p shutdown nosave >/dev/null 2>&1 || true; done
rm -rf "$DIR"
