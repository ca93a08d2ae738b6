"""`scan --pid` against reading the same writable mappings raw, side by side (issue 10's goal: <= 2x).

Starts `python -m vmctx_emu.live.example`, then times, alternating, a raw
read of every readable writable mapping (`iter_chunks`, nothing kept) and a
full `scan` of the process; prints the medians and their ratio, and the peak
memory each run adds (tracemalloc) against the largest mapping.
"""

import statistics
import subprocess
import sys
import time
import tracemalloc

from vmctx_emu.live import scan
from vmctx_emu.live.sources import open_source

ROUNDS = 5


def raw_read(pid):
    with open_source(pid) as src:
        n = 0
        for m in src.mappings():
            if m.readable and m.writable:
                for _, chunk in src.iter_chunks(m):
                    n += len(chunk)
        return n


def timed(fn, *args):
    tracemalloc.start()
    start = time.perf_counter()
    fn(*args)
    took = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return took, peak


def main():
    child = subprocess.Popen([sys.executable, "-m", "vmctx_emu.live.example", "--seconds", "120"],
                             stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        raw, full = [], []
        for _ in range(ROUNDS):
            raw.append(timed(raw_read, child.pid))
            full.append(timed(scan, child.pid))
        with open_source(child.pid) as src:
            writable = [m for m in src.mappings() if m.readable and m.writable]
        largest = max(m.size for m in writable)
        total = sum(m.size for m in writable)
        r = statistics.median(t for t, _ in raw)
        s = statistics.median(t for t, _ in full)
        print(f"writable memory read: {total / 2**20:.1f} MiB in {len(writable)} mappings (largest "
              f"{largest / 2**20:.1f} MiB)")
        print(f"raw read  {r * 1e3:8.1f} ms   peak +{max(p for _, p in raw) / 2**20:.1f} MiB")
        print(f"scan      {s * 1e3:8.1f} ms   peak +{max(p for _, p in full) / 2**20:.1f} MiB")
        print(f"ratio scan/raw: {s / r:.2f}x; peak/largest mapping: {max(p for _, p in full) / largest:.2f}")
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
