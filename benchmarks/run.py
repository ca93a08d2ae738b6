"""Benchmarks, printed as ratios against a baseline run side by side (`make bench`).

Not part of the test suite: timings depend on the machine; the ratios are what
the issues set bounds on.
"""

import argparse
import ctypes
import gc
import statistics
import sys
import time
import timeit
import tracemalloc

from vmctx_emu import Component, HostPtr, OwnedComponentInstance, VMComponentOffsets, VMLowering
from vmctx_emu.memory.native import c_alloc_init


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def best_of_interleaved(fns, repeat):
    """Run each fn `repeat` times, alternating, and return the median seconds of each."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for slot, fn in zip(times, fns):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            slot.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def bench_init(n, repeat):
    big = Component(num_lowerings=n, num_always_trap=n, num_runtime_memories=n, num_runtime_reallocs=n,
                    num_runtime_post_returns=n, num_runtime_component_instances=n)
    offsets = VMComponentOffsets(HostPtr, big)
    log(f"init: {n:,} of each, {offsets.size_of_vmctx():,} bytes, {repeat} rounds")

    def python():
        OwnedComponentInstance(big, (1, 2)).close()

    def c():
        # The whole C path: the plan from the declaration, then vmctx_c_alloc_init applying it.
        c_alloc_init(offsets, (1, 2))

    py, cc = best_of_interleaved([python, c], repeat)
    return [("init: OwnedComponentInstance vs C c_alloc_init (same fills)", py, cc)]


def bench_flags(number):
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=1), (1, 2))
    flags = inst.instance_flags(0)
    word = ctypes.c_int32.from_address(flags.as_raw())

    def python():
        flags.may_enter = False
        return flags.may_enter

    def raw():
        w = ctypes.c_int32.from_address(flags.as_raw())
        w.value = w.value & ~2
        return w.value & 2

    def raw_cached():
        word.value = word.value & ~2
        return word.value & 2

    log(f"flags: {number:,} set+get per round")
    results = []
    for label, fn in (("flag set+get: InstanceFlags vs ctypes.c_int32.from_address RMW", raw),
                      ("flag set+get: InstanceFlags vs a cached ctypes c_int32 RMW", raw_cached)):
        py = min(timeit.repeat(python, number=number, repeat=5)) / number
        base = min(timeit.repeat(fn, number=number, repeat=5)) / number
        results.append((label, py, base))
    return results


def construct_struct(ctx):
    """The same layout as a `construct` Struct, built from the declaration (benchmark only)."""
    import construct as cs

    from vmctx_emu.layouts.types import resolve

    order = "l" if ctx.byte_order == "little" else "b"
    scalar = {"ptr": getattr(cs, f"Int{8 * int(ctx.ptr)}u{order}"),
              "u32": getattr(cs, f"Int32u{order}"), "i32": getattr(cs, f"Int32s{order}")}
    members = []
    for field, region in ctx._fields():
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


def bench_decode(n, repeat, with_construct):
    from vmctx_emu.dumps.decode import decode

    component = Component(num_lowerings=n, num_runtime_component_instances=2, num_always_trap=1,
                          num_runtime_memories=1)
    inst = OwnedComponentInstance(component, (1, 2))
    inst.set_lowering(0, VMLowering(1, 2), 3, 4)
    log(f"decode: {n:,} lowerings, {inst.offsets.size_of_vmctx():,} bytes, {repeat} rounds")
    data = inst.to_bytes()
    decode(inst)  # warm the pages and numpy's caches once

    def ours():
        decode(inst)

    def copy():
        bytes(bytearray(data))

    ours_t, copy_t = best_of_interleaved([ours, copy], repeat)
    rows = [("decode to numpy records vs a plain bytes copy", ours_t, copy_t)]
    if with_construct:
        try:
            import construct  # noqa: F401
        except ImportError:
            log("decode: construct is not installed (make bench installs it); skipping that baseline")
            return rows
        struct = construct_struct(inst)
        try:
            struct = struct.compile()
        except Exception as e:  # construct's compiler is optional; the plain parser is the baseline then
            log(f"decode: construct compile() failed ({type(e).__name__}); using the interpreted parser")
        counts = component.counts()
        log("decode: construct parse (one round; it is slow)")
        t0 = time.perf_counter()
        struct.parse(data, **counts)
        rows.append(("decode to numpy records vs construct Struct.parse", ours_t, time.perf_counter() - t0))
    return rows


def bench_memory():
    component = Component(num_lowerings=1000, num_runtime_component_instances=4)
    size = VMComponentOffsets(HostPtr, component).size_of_vmctx()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    inst = OwnedComponentInstance(component, (1, 2))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    inst.close()
    return size, after - before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="elements of each array for init")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds for init")
    parser.add_argument("--flag-ops", type=int, default=200_000, help="flag operations per round")
    parser.add_argument("--no-construct", action="store_true", help="skip the slow construct baseline")
    args = parser.parse_args(argv)

    rows = (bench_init(args.n, args.repeat) + bench_flags(args.flag_ops)
            + bench_decode(args.n, args.repeat, not args.no_construct))
    print(f"{'benchmark':<66} {'ours':>12} {'baseline':>12} {'ratio':>7}", flush=True)
    for label, ours, base in rows:
        print(f"{label:<66} {ours * 1e3:>10.3f}ms {base * 1e3:>10.3f}ms {ours / base:>6.2f}x"
              if ours > 1e-4 else
              f"{label:<66} {ours * 1e6:>10.3f}us {base * 1e6:>10.3f}us {ours / base:>6.2f}x")
    size, used = bench_memory()
    print(f"memory per instance: buffer {size:,} bytes, allocated {used:,} bytes "
          f"(overhead {used - size:,} bytes)")


if __name__ == "__main__":
    main()
