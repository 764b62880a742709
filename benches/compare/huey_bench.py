"""The throughput harness's workloads on Huey, for benches/compare/run.sh.

Prints one JSON object (the last line) with the same keys as Skiff's
`cargo bench --bench throughput -- --json`:

    python huey_bench.py --storage redis --url redis://127.0.0.1:6390/0 --tasks 10000 --concurrency 64
    python huey_bench.py --storage sqlite --path /tmp/huey.db --tasks 10000 --concurrency 64

Workloads, each on an emptied store, with the consumer started from this process:
  enqueue_per_s             one producer, one call per task
  enqueue_concurrent_per_s  64 producer threads, one call per task
  enqueue_batch_per_s       Huey has no batch API: `task.map(...)` (one write per task)
  process_per_s             N no-op tasks enqueued first; consumer start -> every result stored
                            (Huey(store_none=True) so no-op results are written, as in Skiff).
                            With --sweep, once per consumer configuration (`thread:8`: 8 thread
                            workers; `process:8`: 8 worker processes forked by the consumer,
                            huey_consumer's `-k process -w 8`), each on a fresh backlog of N;
                            process_per_s is the best, process_best names it, process_sweep
                            (and process_sweep_rss_mb) has every one.
  latency_p50_ms / p99      idle consumer with --concurrency thread workers in this process,
                            tasks enqueued at a light steady rate, enqueue call -> task start
                            (in process; latency_samples says how many started)
  latency_xproc_p50_ms/p99  the same with --xproc-workers worker processes (cross-process: the
                            producer is this process, the task starts in a forked worker; the
                            start time comes back as the task's result; CLOCK_MONOTONIC is one
                            clock for every process). 0 skips it (null).
  peak_rss_mb               the consumer in its best processing configuration: thread workers,
                            VmHWM of this process (reset before); worker processes, the peak of
                            the PSS of this process, the workers and the scheduler added up
                            (sampled every 100 ms; pages shared after fork() counted once)

SQLite durability (--synchronous): `default` leaves Huey's default (no pragma: SQLite's own,
FULL); `full` is Huey's `fsync=True` (`PRAGMA synchronous=2` on each connection); `normal` sets
`PRAGMA synchronous=NORMAL` on each connection through a subclass of Huey's SqliteStorage,
because Huey has no option for it (`fsync=False` is OFF). WAL journal in every case (Huey's
default).
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
from huey.storage import SqliteStorage

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
ap.add_argument('--sweep', default=None,
                help='consumer configurations for the processing phase, e.g. '
                     'thread:1,thread:8,thread:64,process:1,process:8,process:64 '
                     '(default: thread:CONCURRENCY)')
ap.add_argument('--xproc-workers', type=int, default=0,
                help='worker processes for the cross-process latency phase (0: skip)')
ap.add_argument('--synchronous', choices=['default', 'normal', 'full'], default='normal')
ap.add_argument('--skip', default='',
                help='phases to skip: any of enqueue,concurrent,batch,process,latency,xproc')
args = ap.parse_args()
SKIP = set(filter(None, args.skip.split(',')))
SWEEP = []
for item in (args.sweep or 'thread:%d' % args.concurrency).split(','):
    kind, _, n = item.partition(':')
    if kind not in ('thread', 'process') or not n.isdigit():
        ap.error('--sweep: thread:N or process:N, not %r' % item)
    SWEEP.append((kind, int(n)))


class NormalSqliteStorage(SqliteStorage):
    """Huey's SqliteStorage at `PRAGMA synchronous=NORMAL` (Huey has no option for it)."""

    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute('pragma synchronous=1')
        return conn


if args.storage == 'redis':
    huey = RedisHuey('skiff-compare', url=args.url, store_none=True)
else:
    for suffix in ('', '-wal', '-shm'):
        try:
            os.remove(args.path + suffix)
        except FileNotFoundError:
            pass
    if args.synchronous == 'normal':
        huey = SqliteHuey('skiff-compare', filename=args.path, store_none=True,
                          storage_class=NormalSqliteStorage)
    elif args.synchronous == 'full':
        huey = SqliteHuey('skiff-compare', filename=args.path, store_none=True, fsync=True)
    else:
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


@huey.task()
def probe_xproc(sent):
    # time.perf_counter() is CLOCK_MONOTONIC: one clock for this process and its forks.
    return time.perf_counter() - sent


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


def pss_mb(pid):
    try:
        with open('/proc/%s/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def consumer_pss_mb(consumer):
    """Proportional set size of this process, the consumer's worker processes and its
    scheduler, added up (pages shared after fork() counted once, split between sharers)."""
    pids = {os.getpid()}
    for p in [p for _, p in consumer.worker_threads] + [consumer.scheduler]:
        pid = getattr(p, 'pid', None)
        if pid:
            pids.add(pid)
    return sum(pss_mb(pid) for pid in pids)


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


# How long a processing step may take before it is given up (Huey can lose a task: a step
# that waited for the last result would never end).
PROCESS_DEADLINE_S = 300


def process(n, kind, workers):
    # The n tasks are waiting (enqueued by enqueue_batch, or untimed before a sweep step).
    # Returns (tasks/s, RSS of the consumer's processes in MB); tasks/s is None when not all n
    # results were stored within PROCESS_DEADLINE_S (the count is printed).
    reset_peak_rss()
    consumer = huey.create_consumer(workers=workers, worker_type=kind, periodic=False)
    start = time.perf_counter()
    consumer.start()
    forks, pss, sampled = kind == 'process', 0.0, start
    while huey.result_count() < n:
        if time.perf_counter() - start > PROCESS_DEADLINE_S:
            print('process %s:%d: %d of %d results after %d s; given up'
                  % (kind, workers, huey.result_count(), n, PROCESS_DEADLINE_S), file=sys.stderr)
            consumer.stop(graceful=False)
            return None, peak_rss_mb()
        time.sleep(0.005)
        if forks and time.perf_counter() - sampled >= 0.1:
            # Worker processes: the peak of their summed PSS, sampled every 100 ms.
            pss, sampled = max(pss, consumer_pss_mb(consumer)), time.perf_counter()
    elapsed = time.perf_counter() - start
    rss = max(pss, consumer_pss_mb(consumer)) if forks else peak_rss_mb()
    consumer.stop(graceful=True)
    return n / elapsed, rss


def latency_xproc(samples, rate, workers):
    consumer = huey.create_consumer(workers=workers, worker_type='process', periodic=False)
    consumer.start()
    time.sleep(0.5)
    gap = 1.0 / rate
    next_at = time.perf_counter()
    handles = []
    for _ in range(samples):
        now = time.perf_counter()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += gap
        handles.append(probe_xproc(time.perf_counter()))
    deadline = time.perf_counter() + 60
    lat = []
    for h in handles:
        try:
            v = h.get(blocking=True, timeout=max(deadline - time.perf_counter(), 0.01))
        except Exception:
            v = None
        if v is not None:
            lat.append(v)
    consumer.stop(graceful=True)
    return percentiles(sorted(lat))


def percentiles(lat):
    if not lat:
        return None, None, 0

    def pct(p):
        i = min(max(int(-(-len(lat) * p // 1)), 1), len(lat)) - 1
        return lat[i] * 1000.0

    return pct(0.50), pct(0.99), len(lat)


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
    return percentiles(sorted(latencies))


def rounded(v, digits=0):
    return None if v is None else round(v, digits) if digits else round(v)


def main():
    n = args.tasks
    calls = args.enqueue_calls or min(n, 20000)
    flush()
    out = {'backend': 'huey-' + args.storage, 'tasks': n, 'concurrency': args.concurrency,
           'huey_version': getattr(huey_pkg, '__version__', None)}
    if args.storage == 'sqlite':
        out['synchronous'] = args.synchronous
        # What this process's connection really runs at (0 OFF, 1 NORMAL, 2 FULL).
        out['synchronous_pragma'] = huey.storage.conn.execute('pragma synchronous').fetchone()[0]
    out['enqueue_per_s'] = None if 'enqueue' in SKIP else round(enqueue_sequential(calls))
    flush()
    out['enqueue_concurrent_per_s'] = (None if 'concurrent' in SKIP
                                       else round(enqueue_concurrent(calls)))
    flush()
    batch = enqueue_batch(n)
    out['enqueue_batch_per_s'] = None if 'batch' in SKIP else round(batch)
    sweep, sweep_rss, best, best_rss = {}, {}, None, None
    if 'process' not in SKIP:
        for i, (kind, workers) in enumerate(SWEEP):
            if i > 0:
                flush()
                noop.map([(b'',)] * n)  # untimed: a fresh backlog of n
            rate, rss = process(n, kind, workers)
            name = '%s:%d' % (kind, workers)
            if rate is None:
                sweep[name], sweep_rss[name] = None, round(rss, 1)
                continue
            print('process %s: %.0f/s, %.1f MB' % (name, rate, rss), file=sys.stderr)
            sweep[name], sweep_rss[name] = round(rate), round(rss, 1)
            if best is None or rate > sweep[best]:
                best, best_rss = name, rss
    out['process_per_s'] = sweep.get(best)
    out['process_best'] = best
    out['process_sweep'] = sweep or None
    out['process_sweep_rss_mb'] = sweep_rss or None
    flush()
    p50 = p99 = None
    samples = None
    if 'latency' not in SKIP:
        p50, p99, samples = latency(args.latency_samples, args.latency_rate)
    out['latency_p50_ms'] = rounded(p50, 3)
    out['latency_p99_ms'] = rounded(p99, 3)
    out['latency_samples'] = samples
    flush()
    p50 = p99 = None
    samples = None
    if args.xproc_workers > 0 and 'xproc' not in SKIP:
        p50, p99, samples = latency_xproc(args.latency_samples, args.latency_rate,
                                          args.xproc_workers)
    out['latency_xproc_p50_ms'] = rounded(p50, 3)
    out['latency_xproc_p99_ms'] = rounded(p99, 3)
    out['latency_xproc_samples'] = samples
    out['latency_xproc_workers'] = args.xproc_workers or None
    out['peak_rss_mb'] = rounded(best_rss, 1)
    flush()
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # consumer threads are daemonic in spirit; do not wait on them


if __name__ == '__main__':
    main()
