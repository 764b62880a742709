"""Prints the markdown tables of Skiff vs Huey and vs apalis-postgres from the JSON files
run.sh wrote: `table.py OUT_DIR [STORES]` (STORES: comma-separated, default all)."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
stores = (sys.argv[2] if len(sys.argv) > 2 else 'redis,sqlite,postgres').split(',')
load = lambda name: json.loads((out / f'{name}.json').read_text())

ROWS = [
    ('enqueue_per_s', 'enqueue, 1 producer (tasks/s)', True),
    ('enqueue_concurrent_per_s', 'enqueue, 64 producers (tasks/s)', True),
    ('enqueue_batch_per_s', 'batch enqueue (tasks/s) ¹', True),
    ('process_per_s', 'process no-op tasks (tasks/s)', True),
    ('latency_p50_ms', 'enqueue-to-start p50, in process (ms)', False),
    ('latency_p99_ms', 'enqueue-to-start p99, in process (ms)', False),
    ('peak_rss_mb', 'peak RSS, consumer phases (MB)', False),
]


def fmt(v):
    if v is None:
        return 'null'
    return f'{v:,.0f}' if v >= 100 else f'{v:.2f}'


def ratio(hv, sv, higher, key=''):
    if hv is None or sv is None:
        return ''
    if key == 'enqueue_batch_per_s':
        # The other side has no batch API (or a different one): no headline ratio.
        return f'{sv / hv:.1f}x' if hv else ''
    if higher:
        r = sv / hv if hv else float('inf')
        return f'**{r:.1f}x**'
    r = hv / sv if sv else float('inf')
    return f'{r:.1f}x better' if r >= 1 else f'{1 / r:.1f}x worse'


huey_stores = [s for s in ('redis', 'sqlite') if s in stores]
if huey_stores:
    print('| workload | store | Huey | Skiff | Skiff / Huey |')
    print('| --- | --- | ---: | ---: | ---: |')
    for store in huey_stores:
        h, s = load(f'huey-{store}'), load(f'skiff-{store}')
        for key, label, higher in ROWS:
            hv, sv = h.get(key), s.get(key)
            print(f'| {label} | {store} | {fmt(hv)} | {fmt(sv)} | {ratio(hv, sv, higher, key)} |')
    print()
    print(f"Skiff: {s['tasks']:,} tasks per phase, {s['concurrency']} workers; "
          f"Huey {h.get('huey_version', '?')}: {h['tasks']:,} tasks per phase, "
          f"{h['concurrency']} thread workers. Latency samples: Skiff "
          f"{s.get('latency_samples') or 'null'}, Huey {h.get('latency_samples') or 'null'}; "
          '`null`: a phase that was skipped.')
    print('¹ Huey has no batch API; its row is `task.map(...)`, one write per task. '
          'Skiff: `Queue::enqueue_many`, 1,000 per call.')

if 'postgres' in stores:
    a, s, p = load('apalis-postgres'), load('skiff-postgres'), load('pgbench')
    if huey_stores:
        print()
    print('| workload | store | apalis-postgres | Skiff | Skiff / apalis |')
    print('| --- | --- | ---: | ---: | ---: |')
    for key, label, higher in ROWS:
        av, sv = a.get(key), s.get(key)
        label = label.replace(' ¹', ' ²')
        print(f'| {label} | postgres | {fmt(av)} | {fmt(sv)} | {ratio(av, sv, higher, key)} |')
    p1, p16 = p['clients_1_per_s'], p['clients_16_per_s']
    print(f"| pgbench one-row INSERT, 1 / 16 clients (tx/s) | postgres | | "
          f"{fmt(p1)} / {fmt(p16)} | "
          + (f"Skiff 1 producer = {s['enqueue_per_s'] / p1:.0%} of 1 client |"
             if s.get('enqueue_per_s') else '|'))
    print()
    print(f"Skiff: {s['tasks']:,} tasks per phase, {s['concurrency']} workers; apalis-postgres: "
          f"{a['tasks']:,} tasks per phase, `.concurrency({a['concurrency']})` + "
          f"`.parallelize(tokio::spawn)`, `batch_size({a['batch_size']})`, "
          f"`lock_tasks({str(a['lock_tasks']).lower()})`. One private PostgreSQL server "
          'for both and pgbench, default durability.')
    print('² apalis: `push_bulk`, 1,000 per call (one `INSERT … unnest`). '
          'Skiff: `Queue::enqueue_many`, 1,000 per call.')
