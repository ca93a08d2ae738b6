"""`vmctx-emu report` against `vmctx-emu scan` of the same process, side by side (issue 21's bound: 2x).

Targets are `python -m vmctx_emu.live.example` with 10 and 2,000 more contexts. For each, medians of
interleaved runs of whole commands (interpreter start-up and imports included): `report --pid P -o
FILE` against `scan --pid P > /dev/null` (the summary a user reads instead), and the page's size.

`python benchmarks/report.py [--rounds N]` prints a Markdown table.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan import VMCTX, compare, start  # noqa: E402

TARGETS = (("11 contexts", 10), ("2,001 contexts", 2000))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    print("| target | report | scan | ratio | report peak | scan peak | page |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, instances in TARGETS:
        child = start(instances, 0)
        try:
            with tempfile.TemporaryDirectory() as folder:
                page = os.path.join(folder, "report.html")
                pid = str(child.pid)
                t_ours, t_base, m_ours, m_base = compare(VMCTX + ["report", "--pid", pid, "-o", page],
                                                         VMCTX + ["scan", "--pid", pid], args.rounds)
                size = os.path.getsize(page)
            print(f"| {name} | {t_ours * 1e3:.0f} ms | {t_base * 1e3:.0f} ms | {t_ours / t_base:.2f}x "
                  f"| {m_ours / 1024:.0f} MiB | {m_base / 1024:.0f} MiB | {size / 1e6:.2f} MB |", flush=True)
        finally:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
