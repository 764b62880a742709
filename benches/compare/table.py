"""Prints the markdown tables of Skiff vs Huey and vs apalis from the JSON files run.sh wrote:
`table.py OUT_DIR [STORES]` (STORES: comma-separated, default all; see run.sh).

A file that is missing (apalis left out with --no-apalis, a store not run) prints as `null`
cells; a phase that was skipped or that a side does not measure prints `null` too."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
stores = (sys.argv[2] if len(sys.argv) > 2
          else 'redis,redis-aof,sqlite,sqlite-full,postgres').split(',')


def load(name):
    path = out / f'{name}.json'
    return json.loads(path.read_text()) if path.exists() else None


STORE_LABEL = {
    'redis': 'redis',
    'redis-aof': 'redis, AOF everysec',
    'sqlite': 'sqlite, sync NORMAL',
    'sqlite-full': 'sqlite, sync FULL',
    'postgres': 'postgres',
}

# key, label, higher is better, sample-count key (latency rows)
ROWS = [
    ('enqueue_per_s', 'enqueue, 1 producer (tasks/s)', True, None),
    ('enqueue_concurrent_per_s', 'enqueue, 64 producers (tasks/s)', True, None),
    ('enqueue_batch_per_s', 'batch enqueue (tasks/s) ¹', True, None),
    ('process_per_s', 'process no-op tasks (tasks/s) ²', True, None),
    ('latency_p50_ms', 'enqueue-to-start p50, in process (ms)', False, 'latency_samples'),
    ('latency_p99_ms', 'enqueue-to-start p99, in process (ms)', False, 'latency_samples'),
    ('latency_xproc_p50_ms', 'enqueue-to-start p50, cross-process (ms) ³', False,
     'latency_xproc_samples'),
    ('latency_xproc_p99_ms', 'enqueue-to-start p99, cross-process (ms) ³', False,
     'latency_xproc_samples'),
    ('peak_rss_mb', 'peak RSS, consumer phases (MB) ⁴', False, None),
]


def fmt(v):
    if v is None:
        return 'null'
    return f'{v:,.0f}' if v >= 100 else f'{v:.2f}'


def get(d, key):
    return None if d is None else d.get(key)


def cell(d, key, samples_key, label_samples):
    v = get(d, key)
    text = fmt(v)
    if v is not None and samples_key and get(d, samples_key) != label_samples:
        text += f' (n={get(d, samples_key)})'
    if key == 'process_per_s' and v is not None and get(d, 'process_best'):
        text += f" ({d['process_best'].replace(':', ' ×')})"
    return text


def ratio(ov, sv, higher, key):
    if ov is None or sv is None:
        return ''
    if key == 'enqueue_batch_per_s':
        # The other side has no batch API (or a different one): no headline ratio.
        return f'{sv / ov:.1f}x' if ov else ''
    if higher:
        r = sv / ov if ov else float('inf')
        return f'**{r:.1f}x**'
    r = ov / sv if sv else float('inf')
    if 0.95 <= r <= 1.05:
        return 'equal'
    return f'{r:.1f}x better' if r >= 1 else f'{1 / r:.1f}x worse'


def table(names, sides):
    """One markdown table: `sides` is [(column title, file prefix)], Skiff last."""
    others = sides[:-1]
    head = '| workload | store | ' + ' | '.join(t for t, _ in sides) + ' | ' + \
        ' | '.join(f'Skiff / {t.split()[0]}' for t, _ in others) + ' |'
    print(head)
    print('| --- | --- | ' + ' | '.join('---:' for _ in sides) + ' | ' +
          ' | '.join('---:' for _ in others) + ' |')
    for store in names:
        files = [load(f'{prefix}-{store}') for _, prefix in sides]
        skiff = files[-1]
        for key, label, higher, samples_key in ROWS:
            label_samples = None
            if samples_key:
                # The label names the count most cells have; a cell that differs names its own.
                counts = [get(d, samples_key) for d in files if get(d, key) is not None]
                if counts:
                    label_samples = max(counts, key=counts.count)
                    if label_samples is not None:
                        label = label.replace(' (ms)', f', {label_samples:,} samples (ms)')
            cells = [cell(d, key, samples_key, label_samples) for d in files]
            ratios = [ratio(get(d, key), get(skiff, key), higher, key) for d in files[:-1]]
            print(f'| {label} | {STORE_LABEL.get(store, store)} | ' + ' | '.join(cells) +
                  ' | ' + ' | '.join(ratios) + ' |')


def first(prefix, names, key):
    for store in names:
        v = get(load(f'{prefix}-{store}'), key)
        if v is not None:
            return v
    return None


huey_stores = [s for s in ('redis', 'redis-aof', 'sqlite', 'sqlite-full') if s in stores]
if huey_stores:
    table(huey_stores, [('Huey (best)', 'huey'), ('apalis', 'apalis'), ('Skiff', 'skiff')])
    print()
    hv = first('huey', huey_stores, 'huey_version')
    ran_apalis = first('apalis', huey_stores, 'tasks') is not None
    apalis_text = (
        f"apalis 1.0 (apalis-redis, apalis-sqlite): "
        f"{first('apalis', huey_stores, 'tasks'):,} tasks per phase, "
        f"`.concurrency({first('apalis', huey_stores, 'concurrency')})` + "
        f"`.parallelize(tokio::spawn)`, `Config::batch_size("
        f"{first('apalis', huey_stores, 'batch_size')})`, `lock_tasks("
        f"{str(first('apalis', huey_stores, 'lock_tasks')).lower()})`, results persisted, "
        f"pool of {first('apalis', huey_stores, 'pool_size')}; its latency worker is woken "
        "by apalis's own notifications (SQLite: an update hook, in process only; Redis: "
        f"pub/sub) with a {first('apalis', huey_stores, 'poll_ms')} ms poll behind them "
        "(apalis-redis 1.0.0's `push` stores every task as scheduled at now, so its "
        "`available` message is never published and its Redis pickup is the poll). "
        if ran_apalis else "apalis: not run in this comparison (`--no-apalis`). ")
    print(f"Skiff: {first('skiff', huey_stores, 'tasks') or 0:,} tasks per phase, "
          f"{first('skiff', huey_stores, 'concurrency')} workers. "
          f"Huey {hv or '?'}: {first('huey', huey_stores, 'tasks') or 0:,} tasks per phase. "
          + apalis_text +
          '`null`: a phase that was skipped, or that a side does not measure.')
    print('¹ Huey has no batch API; its row is `task.map(...)`, one write per task. apalis: '
          '`push_bulk`, 1,000 per call. Skiff: `Queue::enqueue_many`, 1,000 per call.')
    print("² Huey: the best of its sweep (below), named in the cell (thread ×8: 8 thread "
          "workers; process ×8: 8 worker processes, huey_consumer's `-k process -w 8`).")
    print(f"³ The producer in one process, the worker in another. Huey: "
          f"{first('huey', huey_stores, 'latency_xproc_workers') or 'no'} worker processes "
          "forked by its consumer. apalis: not measured (its SQLite wake-up is in process "
          "only). Skiff: the harness's `latency_xproc_*` where it prints them.")
    print('⁴ Skiff and apalis: VmHWM of the one process (reset before the worker phases). '
          "Huey: its best processing configuration's consumer during processing; with worker "
          'processes, the peak of their PSS added up with the parent\'s and the scheduler\'s '
          '(sampled every 100 ms, shared pages counted once).')
    print('Same settings on both sides: redis, no persistence; redis AOF `appendfsync '
          'everysec` (a second private server); sqlite WAL at `synchronous=NORMAL` (Skiff\'s '
          'default; Huey has no option for NORMAL, the bench sets the pragma on each of its '
          "connections through a subclass; apalis's pool connections are opened with it) and "
          'at FULL (Skiff `?synchronous=full`, Huey `fsync=True`, apalis the pool\'s '
          'connect options).')
    # The sweep, per store.
    sweeps = [(s, load(f'huey-{s}')) for s in huey_stores]
    configs = []
    for _, h in sweeps:
        for c in (get(h, 'process_sweep') or {}):
            if c not in configs:
                configs.append(c)
    if configs:
        print()
        print(f"Huey {hv or '?'} processing sweep (tasks/s / memory of the consumer, MB, as ⁴; "
              'the best in bold):')
        print()
        print('| store | ' + ' | '.join(c.replace(':', ' ×') for c in configs) + ' |')
        print('| --- | ' + ' | '.join('---:' for _ in configs) + ' |')
        for store, h in sweeps:
            rates = get(h, 'process_sweep') or {}
            rss = get(h, 'process_sweep_rss_mb') or {}
            cells = []
            for c in configs:
                if c not in rates:
                    cells.append('null')
                    continue
                if rates[c] is None:
                    cells.append('gave up (a result missing after 300 s)')
                    continue
                text = f'{rates[c]:,} / {rss.get(c, 0):.0f} MB'
                cells.append(f'**{text}**' if c == get(h, 'process_best') else text)
            print(f'| {STORE_LABEL.get(store, store)} | ' + ' | '.join(cells) + ' |')

if 'postgres' in stores:
    a, s, p = load('apalis-postgres'), load('skiff-postgres'), load('pgbench')
    if huey_stores:
        print()
    table(['postgres'], [('apalis-postgres', 'apalis'), ('Skiff', 'skiff')])
    p1, p16 = get(p, 'clients_1_per_s'), get(p, 'clients_16_per_s')
    p1_after = get(p, 'clients_1_after_per_s')
    one = get(s, 'enqueue_per_s')
    share = (f"Skiff 1 producer = {one / p1:.0%} of 1 client" if one and p1 else '')
    if share and p1_after:
        share += f" before, {one / p1_after:.0%} after"
    print(f"| pgbench one-row INSERT, 1 / 16 clients (tx/s) | postgres | | "
          f"{fmt(p1)} / {fmt(p16)}"
          + (f"; 1 client after Skiff's run: {fmt(p1_after)}" if p1_after else '')
          + f" | {share} |")
    print()
    apalis_pg = (
        f"apalis-postgres: {get(a, 'tasks'):,} tasks per phase, "
        f"`.concurrency({get(a, 'concurrency')})` + `.parallelize(tokio::spawn)`, "
        f"`batch_size({get(a, 'batch_size')})`, "
        f"`lock_tasks({str(get(a, 'lock_tasks')).lower()})`, latency worker "
        f"`with_pubsub().poll_with_interval({get(a, 'poll_ms')} ms)`. "
        if get(a, 'tasks') is not None else 'apalis-postgres: not run (`--no-apalis`). ')
    print(f"Skiff: {get(s, 'tasks') or 0:,} tasks per phase, {get(s, 'concurrency')} workers; "
          + apalis_pg + 'One private PostgreSQL server for Skiff, apalis and pgbench, '
          'default durability.')
    print('¹ apalis: `push_bulk`, 1,000 per call (one `INSERT … unnest`). '
          'Skiff: `Queue::enqueue_many`, 1,000 per call. '
          + ('² ³ ⁴ as above.' if huey_stores else
             '³ apalis: not measured. ⁴ VmHWM of the one process, reset before the worker '
             'phases.'))
