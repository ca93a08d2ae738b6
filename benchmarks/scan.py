"""`scan --pid` against reading the same writable mappings raw, side by side (issue 10's goal: <= 2x).

Starts the example Wasmtime process (`vmctx_emu.live.example`) three times: as
it is (small: fixed costs such as finding the version string and parsing the
library's symbols weigh most), holding 64 MiB in one block besides (large:
reading dominates; glibc mmaps such a block on its own), and holding 64 MiB in
1 KiB blocks (about 60,000 chunks in glibc's heap, each one step of the heap
walk that decides live or freed). For each it times, alternating, a raw read of every
readable writable mapping (`iter_chunks`, nothing kept) and a full `scan`;
prints the medians and their ratio, a scan that parses the library's symbols
(as each CLI run does once; later scans in one process reuse them), and the
peak memory a scan adds (tracemalloc, the parse included) against the largest
mapping.
"""

import statistics
import subprocess
import sys
import time
import tracemalloc

from vmctx_emu.live import scan, symbols
from vmctx_emu.live.target import open_source

ROUNDS = 5
# (MiB held besides the example, in blocks of how many bytes: None is one block)
BALLAST = ((0, None), (64, None), (64, 1024))


def raw_read(pid):
    with open_source(pid) as src:
        n = 0
        for m in src.mappings():
            if m.readable and m.writable:
                for _, chunk in src.iter_chunks(m):
                    n += len(chunk)
        return n


def timed(fn, *args, before=lambda: None):
    """(seconds untraced, peak bytes traced): two runs, so tracemalloc's overhead is not timed."""
    before()
    start = time.perf_counter()
    fn(*args)
    took = time.perf_counter() - start
    before()
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return took, peak


def child_with(ballast_mib, block):
    held = (f"ballast = bytearray(b'\\x01') * ({ballast_mib} << 20)\n" if block is None else
            f"ballast = [bytearray(b'\\x01') * {block} for _ in range(({ballast_mib} << 20) // {block})]\n")
    code = held + "from vmctx_emu.live.example import main\nmain(['--seconds', '120'])"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    return child


def measure(ballast_mib, block):
    child = child_with(ballast_mib, block)
    try:
        scan(child.pid)  # imports done; then the library's symbols parsed again, as a CLI run pays once
        first = timed(scan, child.pid, before=symbols.ElfSymbols.forget)
        raw, full = [], []
        for _ in range(ROUNDS):
            raw.append(timed(raw_read, child.pid))
            full.append(timed(scan, child.pid))
        with open_source(child.pid) as src:
            writable = [m for m in src.mappings() if m.readable and m.writable]
    finally:
        child.kill()
        child.wait()
    largest = max(m.size for m in writable)
    total = sum(m.size for m in writable)
    r = statistics.median(t for t, _ in raw)
    s = statistics.median(t for t, _ in full)
    peak = max(p for _, p in full + [first])
    return (f"| {total / 2**20:.1f} MiB in {len(writable)} mappings (largest {largest / 2**20:.1f} MiB) "
            f"| {r * 1e3:.1f} ms | {s * 1e3:.1f} ms | {s / r:.2f}x | {first[0] * 1e3:.1f} ms "
            f"| +{peak / 2**20:.1f} MiB | {peak / largest:.2f} |")


def main():
    print("| writable memory | raw read | scan | scan/raw | scan parsing symbols | scan peak | peak/largest mapping |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ballast, block in BALLAST:
        print(measure(ballast, block), flush=True)


if __name__ == "__main__":
    main()
