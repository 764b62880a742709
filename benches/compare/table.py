"""Prints the markdown table of Skiff vs Huey from the JSON files run.sh wrote."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
load = lambda name: json.loads((out / f'{name}.json').read_text())

ROWS = [
    ('enqueue_per_s', 'enqueue, 1 producer (tasks/s)', True),
    ('enqueue_concurrent_per_s', 'enqueue, 64 producers (tasks/s)', True),
    ('enqueue_batch_per_s', 'batch enqueue (tasks/s) ¹', True),
    ('process_per_s', 'process no-op tasks (tasks/s)', True),
    ('latency_p50_ms', 'enqueue-to-start p50 (ms)', False),
    ('latency_p99_ms', 'enqueue-to-start p99 (ms)', False),
    ('peak_rss_mb', 'peak RSS, consumer phases (MB)', False),
]


def fmt(v):
    return f'{v:,.0f}' if v >= 100 else f'{v:.2f}'


print('| workload | store | Huey | Skiff | Skiff / Huey |')
print('| --- | --- | ---: | ---: | ---: |')
for store in ('redis', 'sqlite'):
    h, s = load(f'huey-{store}'), load(f'skiff-{store}')
    for key, label, higher in ROWS:
        hv, sv = h[key], s[key]
        if higher:
            ratio = sv / hv if hv else float('inf')
            r = f'**{ratio:.1f}x**'
        else:
            ratio = hv / sv if sv else float('inf')
            r = f'{ratio:.1f}x better' if ratio >= 1 else f'{1 / ratio:.1f}x worse'
        print(f'| {label} | {store} | {fmt(hv)} | {fmt(sv)} | {r} |')
print()
print(f"Skiff: {s['tasks']:,} tasks per phase, {s['concurrency']} workers; "
      f"Huey: {h['tasks']:,} tasks per phase, {h['concurrency']} thread workers.")
print('¹ Huey has no batch API; its row is `task.map(...)`, one write per task. '
      'Skiff: `Queue::enqueue_many`, 1,000 per call.')
