"""`vmctx-emu scan` as a user runs it, against the command a user would otherwise run, side by side.

Targets are `python -m vmctx_emu.live.example` with 0, 100, 1,000, 2,000 and
5,000 more contexts, and one holding 1 GiB and one 3 GiB of touched memory. For
each, medians of interleaved runs of whole commands (interpreter start-up and
imports included):

* `scan --pid P > /dev/null` (the summary, `--records` and `--json`) against a
  Python `pread` loop over the same writable mappings (`benchmarks/pread_mappings.py`);
* `scan --core C > /dev/null` against `cat C > /dev/null`, and a gzip'd core
  against `zcat C.gz > /dev/null` (a core of the 5,000-context target);
* `where PC --core C` against `cat C` (a core of the 1 GiB target; PC in JIT code);
* each command's peak resident memory (`wait4`), against the baseline's (a
  child reads at least this small process's own high-water mark, ~11 MiB).

Times are wall-clock medians; a core is written only when the target's
readable mappings fit in 2 GiB and a quarter of the free disk.

`python benchmarks/scan.py [--rounds N] [--quick]` prints a Markdown table;
`--quick` skips the 1 and 3 GiB targets and the cores.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
VMCTX = [PYTHON, "-m", "vmctx_emu.cli"]
PREAD = [PYTHON, str(HERE / "pread_mappings.py")]
TARGETS = [("1 context", 0, 0), ("101 contexts", 100, 0), ("1,001 contexts", 1000, 0), ("2,001 contexts", 2000, 0),
           ("5,001 contexts", 5000, 0), ("1 context, 1 GiB", 0, 1024), ("1 context, 3 GiB", 0, 3072)]
# Each target scanned by pid three ways: the default summary, every record, JSON.
OUTPUTS = ((), ("--records",), ("--json",))
# Targets written to a core: `scan --core` (and its gzip) against cat (zcat); `where --core` against cat.
CORE_TARGETS = {"5,001 contexts": "scan", "1 context, 1 GiB": "where"}


def run(argv, stdin=None):
    """(seconds, peak RSS in KiB) of one command, its output to /dev/null."""
    with open(os.devnull, "wb") as null:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=null, stderr=subprocess.PIPE, stdin=stdin)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {err.strip()[-500:]}")
    return took, usage.ru_maxrss


def compare(ours, baseline, rounds):
    """Medians of interleaved runs: (ours s, baseline s, ours KiB, baseline KiB)."""
    a, b = [], []
    for _ in range(rounds):
        a.append(run(ours))
        b.append(run(baseline))
    return (statistics.median(t for t, _ in a), statistics.median(t for t, _ in b),
            max(m for _, m in a), max(m for _, m in b))


def row(what, ours, base, result):
    t_ours, t_base, m_ours, m_base = result
    return (f"| {what} | `{ours}` {t_ours * 1e3:.0f} ms | `{base}` {t_base * 1e3:.0f} ms | {t_ours / t_base:.2f}x "
            f"| {m_ours / 1024:.0f} MiB | {m_base / 1024:.0f} MiB |")


def start(instances, ballast):
    child = subprocess.Popen([PYTHON, "-m", "vmctx_emu.live.example", "--seconds", "3600", "--instances",
                              str(instances), "--ballast-mib", str(ballast)], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if "ready" not in line:
        raise SystemExit(f"the example did not start: {line!r}")
    return child


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the 1 and 3 GiB targets and the cores")
    args = parser.parse_args(argv)
    print("| target | ours | baseline | ratio | our peak | baseline peak |")
    print("|---|---|---|---:|---:|---:|")
    for name, instances, ballast in TARGETS:
        if args.quick and ballast:
            continue
        child = start(instances, ballast)
        try:
            pid = str(child.pid)
            for extra in OUTPUTS:
                result = compare(VMCTX + ["scan", "--pid", pid, *extra], PREAD + [pid], args.rounds)
                print(row(f"{name}, by pid", " ".join(["scan --pid", *extra]), "pread loop", result), flush=True)
            if name in CORE_TARGETS and not args.quick:
                cores(name, child.pid, args.rounds, CORE_TARGETS[name])
        finally:
            child.kill()
            child.wait()


def a_jit_address(pid):
    """16 bytes into the first trampoline's wasm_call of the target's first context: a PC for `where`."""
    doc = json.loads(subprocess.run(VMCTX + ["scan", "--pid", str(pid), "--json"], capture_output=True, text=True,
                                    check=True).stdout)
    value = next(r["value"] for r in doc["contexts"][0]["records"] if r["field"].endswith("wasm_call"))
    return f"{int(value, 16) + 16:#x}"

CORE_CAP = 2 << 30  # the most a core may take on the shared disk


def readable_bytes(pid):
    """What gcore would write: the sizes of the target's readable mappings."""
    total = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                low, high = (int(x, 16) for x in span.split("-"))
                total += high - low
    return total


def cores(name, pid, rounds, what):
    gcore = shutil.which("gcore")
    if gcore is None:
        print("| cores | gcore (gdb) is not installed | | | | |")
        return
    size = readable_bytes(pid)
    address = a_jit_address(pid) if what == "where" else None
    with tempfile.TemporaryDirectory() as folder:
        free = shutil.disk_usage(folder).free
        if size > min(CORE_CAP, free // 4):
            print(f"| cores | skipped: a core would take {size >> 20} MiB ({free >> 20} MiB free) | | | | |")
            return
        prefix = os.path.join(folder, "core")
        subprocess.run([gcore, "-o", prefix, str(pid)], check=True, capture_output=True)
        core = f"{prefix}.{pid}"
        size = os.path.getsize(core) >> 20
        if what == "where":
            result = compare(VMCTX + ["where", address, "--core", core], ["cat", core], rounds)
            print(row(f"{name}, core ({size} MiB)", "where PC --core", "cat", result), flush=True)
            return
        subprocess.run(["gzip", "-1", "-k", core], check=True)
        result = compare(VMCTX + ["scan", "--core", core], ["cat", core], rounds)
        print(row(f"{name}, core ({size} MiB)", "scan --core", "cat", result), flush=True)
        result = compare(VMCTX + ["scan", "--core", core + ".gz"], ["zcat", core + ".gz"], rounds)
        print(row(f"{name}, gzip core", "scan --core", "zcat", result), flush=True)

if __name__ == "__main__":
    main()
