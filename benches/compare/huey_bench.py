"""The throughput harness's workloads on Huey, for benches/compare/run.sh.

Prints one JSON object (the last line) with the same keys as Skiff's
`cargo bench --bench throughput -- --json`:

    python huey_bench.py --storage redis --url redis://127.0.0.1:6390/0 --tasks 10000 --concurrency 64
    python huey_bench.py --storage sqlite --path /tmp/huey.db --tasks 10000 --concurrency 64

Workloads, each on an emptied store, with the consumer in this process (thread workers):
  enqueue_per_s             one producer, one call per task
  enqueue_concurrent_per_s  64 producer threads, one call per task
  enqueue_batch_per_s       Huey has no batch API: `task.map(...)` (one write per task)
  process_per_s             N no-op tasks enqueued first; consumer start -> every result stored
                            (Huey(store_none=True) so no-op results are written, as in Skiff)
  latency_p50_ms / p99      idle consumer, tasks enqueued at a light steady rate,
                            enqueue call -> task start
  peak_rss_mb               VmHWM of this process (reset before the consumer phases)
"""

import argparse
import json
import logging
import os
import sys
import threading
import time

import huey as huey_pkg
from huey import RedisHuey, SqliteHuey

logging.disable(logging.CRITICAL)

ap = argparse.ArgumentParser()
ap.add_argument('--storage', choices=['redis', 'sqlite'], required=True)
ap.add_argument('--url', default='redis://127.0.0.1:6379/0')
ap.add_argument('--path', default='/tmp/huey-bench.db')
ap.add_argument('--tasks', type=int, default=10000)
ap.add_argument('--concurrency', type=int, default=64)
ap.add_argument('--enqueue-calls', type=int, default=None)
ap.add_argument('--latency-samples', type=int, default=1000)
ap.add_argument('--latency-rate', type=int, default=200)
args = ap.parse_args()

if args.storage == 'redis':
    huey = RedisHuey('skiff-compare', url=args.url, store_none=True)
else:
    for suffix in ('', '-wal', '-shm'):
        try:
            os.remove(args.path + suffix)
        except FileNotFoundError:
            pass
    huey = SqliteHuey('skiff-compare', filename=args.path, store_none=True)

EPOCH = time.perf_counter()
latencies = []
lat_lock = threading.Lock()


@huey.task()
def noop(payload):
    return None


@huey.task()
def probe(sent):
    now = time.perf_counter() - EPOCH
    with lat_lock:
        latencies.append(now - sent)


def flush():
    huey.storage.flush_all()


def reset_peak_rss():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def enqueue_sequential(n):
    start = time.perf_counter()
    for _ in range(n):
        noop(b'')
    return n / (time.perf_counter() - start)


def enqueue_concurrent(n, producers=64):
    per = -(-n // producers)

    def produce():
        for _ in range(per):
            noop(b'')

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * producers / (time.perf_counter() - start)


def enqueue_batch(n):
    start = time.perf_counter()
    noop.map([(b'',)] * n)
    return n / (time.perf_counter() - start)


def process(n):
    # The n tasks were enqueued by enqueue_batch.
    consumer = huey.create_consumer(workers=args.concurrency, worker_type='thread',
                                    periodic=False)
    start = time.perf_counter()
    consumer.start()
    while huey.result_count() < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    consumer.stop(graceful=True)
    return n / elapsed


def latency(samples, rate):
    latencies.clear()
    consumer = huey.create_consumer(workers=args.concurrency, worker_type='thread',
                                    periodic=False)
    consumer.start()
    time.sleep(0.5)
    gap = 1.0 / rate
    next_at = time.perf_counter()
    for _ in range(samples):
        now = time.perf_counter()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += gap
        probe(time.perf_counter() - EPOCH)
    deadline = time.perf_counter() + 60
    while len(latencies) < samples and time.perf_counter() < deadline:
        time.sleep(0.01)
    consumer.stop(graceful=True)
    lat = sorted(latencies)

    def pct(p):
        i = min(max(int(-(-len(lat) * p // 1)), 1), len(lat)) - 1
        return lat[i] * 1000.0

    return pct(0.50), pct(0.99), len(lat)


def main():
    n = args.tasks
    calls = args.enqueue_calls or min(n, 20000)
    flush()
    out = {'backend': 'huey-' + args.storage, 'tasks': n, 'concurrency': args.concurrency,
           'huey_version': getattr(huey_pkg, '__version__', None)}
    out['enqueue_per_s'] = round(enqueue_sequential(calls))
    flush()
    out['enqueue_concurrent_per_s'] = round(enqueue_concurrent(calls))
    flush()
    out['enqueue_batch_per_s'] = round(enqueue_batch(n))
    reset_peak_rss()
    out['process_per_s'] = round(process(n))
    flush()
    p50, p99, samples = latency(args.latency_samples, args.latency_rate)
    out['latency_p50_ms'] = round(p50, 3)
    out['latency_p99_ms'] = round(p99, 3)
    out['latency_samples'] = samples
    out['peak_rss_mb'] = round(peak_rss_mb(), 1)
    flush()
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # consumer threads are daemonic in spirit; do not wait on them


if __name__ == '__main__':
    main()
