"""Prints the time (Unix seconds) at which the record files rec.1 … rec.P in DIR hold N lines.

Used by benches/scale.sh: started before the worker processes, it reads what they append
every 5 ms, so the end of a run is timed without starting a process per check.

    python3 benches/scale_watch.py N P DIR
"""
import os
import sys
import time

n, procs, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
files, lines = {}, 0
while lines < n:
    for i in range(1, procs + 1):
        f = files.get(i)
        if f is None:
            try:
                f = files[i] = open(os.path.join(work, f"rec.{i}"), "rb")
            except FileNotFoundError:
                continue
        lines += f.read().count(b"\n")
    if lines < n:
        time.sleep(0.005)
print(f"{time.time():.6f}")
