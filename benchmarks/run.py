"""Benchmarks: ours, a baseline run side by side, and their ratio, in one table (`make bench`).

Not part of the test suite: timings depend on the machine; the ratios are what
the issues set goals on. Baselines are the floors the goals name:

* one copy of the dump's bytes (`bytearray(data)`), not two;
* the cached ctypes floor: a `c_int32`/`c_uint64.from_address` made once,
  then `.value` read or written (the cheapest Python access to those bytes);
* the C initializer alone (`vmctx_c_alloc_init` + `vmctx_c_free`, its fill array already built);
* `python -c pass` for start-up;
* `construct` timed over as many rounds as ours;
* for commands, what a user would run instead: a Python process copying the dump to stdout
  (`decode`), `cat` of the very output (`decode --json`), `hexdump -C` of the same file
  (`hexdump`), each with its output to /dev/null as ours.

Times are CPU seconds (user + system: `time.process_time` in this process,
`wait4`'s rusage for a child), so other work on the machine does not inflate
them; each is the median of interleaved rounds. Every large row has a
small-size row next to it. A command's peak memory is the whole process's
ru_maxrss (interpreter and imports included), started from `peak.py` so it
does not inherit this process's high-water mark; the library's is measured in a
fresh subprocess after its imports: the larger of tracemalloc's peak (Python
and numpy allocations) and the growth of ru_maxrss (ctypes, C, pages).

`make bench` rewrites the README's table between its marker comments
(`--readme` to choose the file, `--no-readme` to leave it alone).
"""

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
CLI = os.path.join(os.path.dirname(sys.executable), "vmctx-emu")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def medians_interleaved(fns, rounds, number=1):
    """Run each fn `number` times per round, alternating fns, `rounds` rounds: the median seconds per call."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for slot, fn in zip(times, fns):
            gc.collect()
            t0 = time.process_time()
            for _ in range(number):
                fn()
            slot.append((time.process_time() - t0) / number)
    return [statistics.median(t) for t in times]


def per_call(fns, number, rounds=7):
    """Tight-loop cost per call of each fn (best of `rounds` interleaved loops of `number` calls)."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t0 = time.process_time()
            for _ in range(number):
                fn()
            best[k] = min(best[k], (time.process_time() - t0) / number)
    return best


class Row:
    def __init__(self, label, ours, base, unit, goal=None, baseline=""):
        self.label, self.ours, self.base, self.unit, self.goal, self.baseline = label, ours, base, unit, goal, baseline

    @property
    def ratio(self):
        return self.ours / self.base

    def fmt(self, v):
        if self.unit == "B":
            return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB"
        if v >= 1:
            return f"{v:.2f} s"
        if v >= 1e-3:
            return f"{v * 1e3:.2f} ms"
        return f"{v * 1e6:.2f} us"

    def verdict(self):
        if self.goal is None:
            return ""
        return f"<= {self.goal:g}x " + ("ok" if self.ratio <= self.goal else "MISSED")


# -- fixtures --------------------------------------------------------------

def decode_component(n):
    from vmctx_emu import Component

    return Component(num_lowerings=n, num_runtime_component_instances=2, num_always_trap=1, num_runtime_memories=1)


def make_dump(n, directory):
    """A dump of `n` lowerings (one set, the rest as initialised) and its sidecar; its path."""
    from vmctx_emu import OwnedComponentInstance, VMLowering

    inst = OwnedComponentInstance(decode_component(n), (1, 2))
    inst.set_lowering(0, VMLowering(1, 2), 3, 4)
    path = os.path.join(directory, f"ctx{n}.bin")
    inst.dump(path)
    inst.close()
    return path


# -- time rows --------------------------------------------------------------

def bench_init(n, rounds):
    from vmctx_emu import Component, HostPtr, OwnedComponentInstance, VMComponentOffsets
    from vmctx_emu.memory.initializer import fills_for
    from vmctx_emu.memory.native import c_fill_array, ffi, lib

    component = Component(num_lowerings=n, num_always_trap=n, num_runtime_memories=n, num_runtime_reallocs=n,
                          num_runtime_post_returns=n, num_runtime_component_instances=n)
    offsets = VMComponentOffsets(HostPtr, component)
    number = max(1, 20_000 // max(n, 1))
    log(f"init: {n:,} of each, {offsets.size_of_vmctx():,} bytes, {rounds} rounds of {number}")
    # The C call with its plan already built, as a C embedder would hold it: allocate, apply, free.
    fills = fills_for(offsets, (1, 2))
    size, ptr_size, array, count = offsets.size_of_vmctx(), int(HostPtr), c_fill_array(fills), len(fills)
    error, bad = ffi.new("int *"), ffi.new("size_t *")
    alloc_init, free = lib.vmctx_c_alloc_init, lib.vmctx_c_free

    def ours():
        OwnedComponentInstance(component, (1, 2)).close()

    def c():
        free(alloc_init(size, ptr_size, array, count, error, bad))

    py, cc = medians_interleaved([ours, c], rounds, number)
    return Row(f"init, {n:,} of each array: OwnedComponentInstance vs the C call `vmctx_c_alloc_init` "
               "with its plan built", py, cc, "s", goal=5 if n <= 10 else None)


def bench_decode(path, n, rounds):
    from vmctx_emu import load_dump
    from vmctx_emu.dumps.decode import decode

    ctx = load_dump(path)
    data = bytes(ctx.memory)
    number = max(1, 2_000 // max(n, 1))
    log(f"decode: {n:,} lowerings, {len(data):,} bytes, {rounds} rounds of {number}")
    decode(ctx)  # warm numpy's caches once

    def ours():
        decode(ctx)

    def copy():
        bytearray(data)

    def with_records():
        decode(ctx).records

    ours_t, copy_t, records_t = medians_interleaved([ours, copy, with_records], rounds, number)
    return [Row(f"decode, {n:,} lowerings: `decode()` vs one copy of the dump's bytes", ours_t, copy_t, "s",
                goal=2 if n >= 1_000_000 else None),
            Row(f"decode, {n:,} lowerings: `decode().records` (all records as one array, built on demand) "
                "vs one copy", records_t, copy_t, "s")]


def construct_struct(ctx):
    """The same layout as a `construct` Struct, built from the declaration (benchmark only)."""
    import construct as cs

    from vmctx_emu.layouts.types import resolve

    order = "l" if ctx.byte_order == "little" else "b"
    scalar = {"ptr": getattr(cs, f"Int{8 * int(ctx.ptr)}u{order}"),
              "u32": getattr(cs, f"Int32u{order}"), "i32": getattr(cs, f"Int32s{order}")}
    members = []
    for field, region in zip(ctx.layout.declared_fields(), ctx.offsets.regions()):
        if region.padding_before:
            members.append(cs.Padding(region.padding_before))
        subs, at = [], 0
        for sub in field.elem_type.subfields:
            off = resolve(sub.offset, ctx.ptr)
            if off > at:
                subs.append(cs.Padding(off - at))
            subs.append(sub.name / scalar[sub.kind])
            at = off + sub.width(ctx.ptr)
        if region.elem_size > at:
            subs.append(cs.Padding(region.elem_size - at))
        elem = cs.Struct(*subs)
        members.append(field.name / (cs.Array(getattr(cs.this._params, field.count), elem) if field.count else elem))
    return cs.Struct(*members)


def bench_construct(path, n, rounds):
    """`decode()` against construct's parser, both over `rounds` rounds."""
    try:
        import construct  # noqa: F401
    except ImportError:
        log("construct is not installed (make bench installs it); skipping that baseline")
        return None
    from vmctx_emu import load_dump
    from vmctx_emu.dumps.decode import decode

    ctx = load_dump(path)
    data = bytes(ctx.memory)
    struct = construct_struct(ctx)
    try:
        struct = struct.compile()
    except Exception as e:  # construct's compiler is optional; the plain parser is the baseline then
        log(f"construct compile() failed ({type(e).__name__}); using the interpreted parser")
    counts = ctx.offsets.component.counts()
    number = max(1, 200 // max(n, 1))
    log(f"construct: {n:,} lowerings, {rounds} rounds of {number}")
    ours_t, cs_t = medians_interleaved([lambda: decode(ctx), lambda: struct.parse(data, **counts)], rounds, number)
    return Row(f"decode, {n:,} lowerings: `decode()` vs construct `Struct.parse`", ours_t, cs_t, "s")


def bench_access(number):
    """Per-access getters and setters against the cached ctypes floor doing the same reads or writes.

    Getters on a debug instance (they check the slot is set); setters on a
    release one (a debug one refuses a second set).
    """
    from vmctx_emu import Component, OwnedComponentInstance, VMLowering

    component = Component(num_lowerings=4, num_runtime_memories=4, num_runtime_component_instances=2)
    inst = OwnedComponentInstance(component, (1, 2))
    inst.set_lowering(1, VMLowering(1, 2), 3, 4)
    inst.set_runtime_memory(1, 0x1000)
    rel = OwnedComponentInstance(component, (1, 2), debug_assertions=False)
    flags = inst.instance_flags(1)

    def words(ctx):
        o = ctx.offsets
        u64 = lambda off: ctypes.c_uint64.from_address(ctx.vmctx + off)  # noqa: E731
        return (u64(o.lowering_callee(1)), u64(o.lowering_data(1)), u64(o.lowering_anyfunc(1)),
                ctypes.c_uint32.from_address(ctx.vmctx + o.lowering_anyfunc(1) + 8),
                u64(o.lowering_anyfunc(1) + 16), u64(o.runtime_memory(1)))

    callee, data, _, _, _, mem = words(inst)
    r_callee, r_data, r_func, r_type, r_vmctx, r_mem = words(rel)
    word = ctypes.c_int32.from_address(inst.vmctx + inst.offsets.instance_flags(1))
    lowering, runtime_memory = inst.lowering, inst.runtime_memory
    set_lowering, set_runtime_memory = rel.set_lowering, rel.set_runtime_memory
    value, own = VMLowering(5, 6), rel.vmctx
    log(f"access: {number:,} calls per loop")

    def floor_lowering_get():
        return (callee.value, data.value)

    def floor_lowering_set():
        r_callee.value = 5
        r_data.value = 6
        r_func.value = 3
        r_type.value = 4
        r_vmctx.value = own

    def floor_get():
        return mem.value

    def floor_set():
        r_mem.value = 0x2000

    def flag_get():
        return flags.may_enter

    def flag_set():
        flags.may_enter = False

    def floor_flag_get():
        return bool(word.value & 2)

    def floor_flag_set():
        word.value = word.value & ~2

    cases = [
        ("get a lowering: `lowering(i)` vs 2 cached c_uint64 reads", lambda: lowering(1), floor_lowering_get),
        ("set a lowering: `set_lowering(i, ...)` vs its 5 words written through cached ctypes",
         lambda: set_lowering(1, value, 3, 4), floor_lowering_set),
        ("get a memory pointer: `runtime_memory(i)` vs a cached c_uint64 read", lambda: runtime_memory(1), floor_get),
        ("set a memory pointer: `set_runtime_memory(i, p)` vs a cached c_uint64 write",
         lambda: set_runtime_memory(1, 0x2000), floor_set),
        ("get a flag bit: `flags.may_enter` vs a cached c_int32 read", flag_get, floor_flag_get),
        ("set a flag bit: `flags.may_enter = False` vs a cached c_int32 read-modify-write", flag_set, floor_flag_set),
    ]
    rows = []
    for label, ours, floor in cases:
        o, f = per_call([ours, floor], number)
        rows.append(Row(label, o, f, "s", goal=5))
    inst.close()
    rel.close()
    return rows


def run_timed(argv, rounds, stdout=subprocess.DEVNULL):
    """Median CPU seconds (user + system) of `argv` run as a fresh process."""
    times = []
    for _ in range(rounds):
        child = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited with {child.returncode}")
        times.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(times)


STARTUP = ["--version", "--help", "layout", "versions", "decode --help"]


def bench_startup(rounds):
    """Commands that read no dump (`--version`, `--help`, `layout`, ...) against `python -c pass`, interleaved."""
    cases = [(name, [CLI, *name.split()]) for name in STARTUP]
    log(f"start-up: {rounds} rounds")
    floor = [sys.executable, "-c", "pass"]
    subprocess.run(floor, check=True)
    for _, argv in cases:  # warm the page cache and the .pyc files
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    samples = {name: [] for name, _ in cases}
    floors = []
    for _ in range(rounds):
        floors.append(run_timed(floor, 1))
        for name, argv in cases:
            samples[name].append(run_timed(argv, 1))
    f = statistics.median(floors)
    return [Row(f"start-up: `vmctx-emu {name}` vs `python -c pass`", statistics.median(samples[name]), f, "s",
                goal=2) for name, _ in cases]


COPY_TO_STDOUT = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"


def bench_cli_decode(path, n, rounds):
    """`vmctx-emu decode DUMP > /dev/null` against a process that copies the dump to stdout once."""
    log(f"cli decode: {n:,} lowerings, {rounds} rounds")
    ours, base = [], []
    for _ in range(rounds):
        base.append(run_timed([sys.executable, "-c", COPY_TO_STDOUT, path], 1))
        ours.append(run_timed([CLI, "decode", path], 1))
    return Row(f"CLI `decode` to text, {n:,} lowerings: vs a process copying the dump to stdout once",
               statistics.median(ours), statistics.median(base), "s", goal=3)


def bench_cli_against(label, ours_argv, base_argv, rounds, goal=None):
    """`ours_argv` against `base_argv`, each a fresh process with its output to /dev/null, interleaved."""
    log(f"{label}: {rounds} rounds")
    ours, base = [], []
    for _ in range(rounds):
        base.append(run_timed(base_argv, 1))
        ours.append(run_timed(ours_argv, 1))
    return Row(label, statistics.median(ours), statistics.median(base), "s", goal=goal)


def bench_cli_json(path, n, rounds, directory):
    """`vmctx-emu decode --json DUMP` against `cat` of that very output."""
    output = os.path.join(directory, f"decode{n}.json")
    with open(output, "wb") as f:
        subprocess.run([CLI, "decode", "--json", path], stdout=f, check=True)
    size = os.path.getsize(output)
    try:
        return bench_cli_against(f"CLI `decode --json`, {n:,} lowerings ({size / 2**20:,.1f} MiB): vs `cat` of its "
                                 "output", [CLI, "decode", "--json", path], ["cat", output], rounds,
                                 goal=10 if n >= 1_000_000 else None)
    finally:
        os.unlink(output)


def bench_cli_hexdump(path, n, rounds):
    """`vmctx-emu hexdump DUMP` against `hexdump -C DUMP` (util-linux or BSD)."""
    import shutil

    if shutil.which("hexdump") is None:
        log("hexdump is not installed; skipping that baseline")
        return None
    return bench_cli_against(f"CLI `hexdump`, {n:,} lowerings: vs `hexdump -C` of the same file",
                             [CLI, "hexdump", path], ["hexdump", "-C", path], rounds,
                             goal=1 if n >= 1_000_000 else None)


# -- memory rows (each measured in a fresh process) --------------------------

def _worker(kind, path):
    """Peak bytes of loading and decoding `path` (kind "decode"), or of one instance (kind "instance")."""
    import numpy  # noqa: F401  (imported before the first reading, so it is not counted)

    import vmctx_emu.dumps.decode  # noqa: F401
    from vmctx_emu import load_dump
    from vmctx_emu.dumps.decode import decode

    gc.collect()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    if kind == "decode":
        decoded = decode(load_dump(path))
        len(decoded.anomalies)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"tracemalloc": peak, "rss": rss1 - rss0}))


def peak_of(kind, path):
    out = subprocess.run([sys.executable, __file__, "--worker", kind, path], capture_output=True, text=True,
                         check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    return max(got["tracemalloc"], got["rss"])


def whole_process_peak(argv):
    """Peak resident bytes of the command `argv` (stdout to /dev/null): interpreter and imports included."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "peak.py"), *argv], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[-1]) * 1024


def bench_peak(path, n, kind):
    size = os.path.getsize(path)
    if kind == "decode":
        return Row(f"peak memory, {n:,} lowerings: `load_dump` + `decode()` (in-process, imports excluded) "
                   "vs the dump's size", peak_of(kind, path), size, "B", goal=3 if n >= 1_000_000 else None)
    return Row(f"peak memory, {n:,} lowerings: the whole `vmctx-emu decode` process vs the dump's size",
               whole_process_peak([CLI, "decode", path]), size, "B", goal=3 if n >= 1_000_000 else None)


def bench_instance_memory():
    from vmctx_emu import Component, HostPtr, OwnedComponentInstance, VMComponentOffsets

    component = Component(num_lowerings=1000, num_runtime_component_instances=4)
    size = VMComponentOffsets(HostPtr, component).size_of_vmctx()
    OwnedComponentInstance(component, (1, 2)).close()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    inst = OwnedComponentInstance(component, (1, 2))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    inst.close()
    return Row("memory of one instance, 1,000 lowerings: allocated vs its context's size", after - before, size, "B")


# -- output -----------------------------------------------------------------

def table(rows):
    lines = ["| benchmark | ours | baseline | ratio | goal |", "|---|---:|---:|---:|---|"]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio >= 0.1 else f"{r.ratio:.2g}x"
        lines.append(f"| {r.label} | {r.fmt(r.ours)} | {r.fmt(r.base)} | {ratio} | {r.verdict()} |")
    return "\n".join(lines)


def update_readme(path, text):
    with open(path, encoding="utf-8") as f:
        old = f.read()
    if START not in old or END not in old:
        log(f"{path} has no {START} ... {END} markers; not updated")
        return
    head, rest = old.split(START, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{text}\n{END}{tail}")
    log(f"{path}: benchmark table updated")


def compile_package():
    """Byte-compile the package as an install does: start-up rows then measure start-up, not compiling
    (PYTHONDONTWRITEBYTECODE would otherwise make every fresh process compile every module)."""
    import compileall

    import vmctx_emu

    compileall.compile_dir(os.path.dirname(vmctx_emu.__file__), quiet=1)


def bench_commands(args, small, large, tmp):
    """The rows that time commands, each against what a user would run instead."""
    rows = bench_startup(max(args.rounds, 11))
    rows.append(bench_cli_decode(small, args.small, args.rounds))
    rows.append(bench_cli_decode(large, args.n, args.cli_rounds))
    rows.append(bench_cli_json(small, args.small, args.rounds, tmp))
    rows.append(bench_cli_json(large, args.n, args.cli_rounds, tmp))
    for n, path, rounds in ((args.small, small, args.rounds), (args.n, large, args.cli_rounds)):
        row = bench_cli_hexdump(path, n, rounds)
        if row:
            rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="lowerings of the large dump and arrays of the large init")
    parser.add_argument("--small", type=int, default=10, help="the small size next to every large row")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per row")
    parser.add_argument("--access-ops", type=int, default=100_000, help="calls per per-access loop")
    parser.add_argument("--cli-rounds", type=int, default=3, help="rounds of the large CLI decode")
    parser.add_argument("--no-construct", action="store_true", help="skip the construct baseline")
    parser.add_argument("--readme", default=README, help="README whose table is regenerated")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    parser.add_argument("--only", choices=("all", "commands"), default="all",
                        help="commands: only the rows that time commands (start-up, decode, decode --json, hexdump); "
                             "with PYTHONPATH=CHECKOUT they time another checkout's package (the README is then "
                             "left alone)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(*args.worker)

    compile_package()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small, large = make_dump(args.small, tmp), make_dump(args.n, tmp)
        gc.collect()
        if args.only == "commands":
            args.no_readme = True
            rows = bench_commands(args, small, large, tmp)
            print(table(rows), flush=True)
            return
        for n in (args.small, args.n):
            rows.append(bench_init(n, args.rounds))
        for n, path in ((args.small, small), (args.n, large)):
            rows += bench_decode(path, n, args.rounds)
        for n, path in ((args.small, small), (args.n, large)):
            rows.append(bench_peak(path, n, "decode"))
        if not args.no_construct:
            for n, path in ((args.small, small), (args.n, large)):
                row = bench_construct(path, n, args.rounds)
                if row:
                    rows.append(row)
        rows += bench_access(args.access_ops)
        rows += bench_commands(args, small, large, tmp)
        for n, path in ((args.small, small), (args.n, large)):
            rows.append(bench_peak(path, n, "cli"))
        rows.append(bench_instance_memory())

    text = table(rows)
    note = (f"`make bench` on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; large = "
            f"{args.n:,} lowerings, small = {args.small:,}.")
    print(text + "\n\n" + note, flush=True)
    if not args.no_readme:
        update_readme(args.readme, text + "\n\n" + note)


if __name__ == "__main__":
    main()
