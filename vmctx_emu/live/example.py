"""A real Wasmtime to scan: `python -m vmctx_emu.live.example [--seconds N] [--instances N] [--ballast-mib M]`.

Instantiates a component (a host import, a lowered call, a lifted export) in
the installed `wasmtime` package, calls it once, prints "pid N ready" and
waits, so `vmctx-emu scan --pid N` or `gcore N` has a live context to find.
`--instances` makes that many more contexts of the same shape (100 to a
store) and `--ballast-mib` holds that much more touched memory, for
benchmarks of large targets.
"""

import argparse
import os
import sys
import time

COMPONENT = """
(component
  (import "add" (func $add (param "x" u32) (result u32)))
  (core func $add-lowered (canon lower (func $add)))
  (core module $m
    (import "host" "add" (func $add (param i32) (result i32)))
    (func (export "run") (param i32) (result i32)
      local.get 0 call $add i32.const 1 i32.add))
  (core instance $i (instantiate $m (with "host" (instance (export "add" (func $add-lowered))))))
  (func (export "run") (param "x" u32) (result u32) (canon lift (core func $i "run"))))
"""


def instantiate(add=lambda x: x + 100):
    """(store, run): COMPONENT instantiated in a fresh engine with `add` as its host import; ImportError without wasmtime."""
    import wasmtime
    from wasmtime.component import Component, Linker

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", lambda store, x: add(x))
    instance = linker.instantiate(store, Component(engine, COMPONENT))
    return store, instance.get_func(store, "run")


PER_STORE = 100


def more_instances(count, add=lambda x: x + 100):
    """`count` more instances of COMPONENT (PER_STORE to a store), kept alive by the returned list."""
    import wasmtime
    from wasmtime.component import Component, Linker

    engine = wasmtime.Engine()
    component = Component(engine, COMPONENT)
    linker = Linker(engine)
    with linker.root() as root:
        root.add_func("add", lambda store, x: add(x))
    kept = []
    for first in range(0, count, PER_STORE):
        store = wasmtime.Store(engine)
        kept.append(store)
        kept += [linker.instantiate(store, component) for _ in range(min(PER_STORE, count - first))]
    return kept


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vmctx_emu.live.example", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to wait (default 600)")
    parser.add_argument("--instances", type=int, default=0, metavar="N",
                        help="this many more contexts of the same shape (default 0)")
    parser.add_argument("--ballast-mib", type=int, default=0, metavar="M",
                        help="this many MiB more of touched memory, in 1 KiB blocks (default 0)")
    args = parser.parse_args(argv)
    if args.instances < 0 or args.ballast_mib < 0:
        parser.error("--instances and --ballast-mib take a number >= 0")
    try:
        store, run = instantiate()
        kept = more_instances(args.instances)
    except ImportError:
        print("the example needs the wasmtime package: pip install wasmtime", file=sys.stderr)
        return 2
    ballast = [bytearray(b"\x01") * 1024 for _ in range(args.ballast_mib * 1024)]
    print(f"pid {os.getpid()} ready: run(1) = {run(store, 1)}", flush=True)
    time.sleep(args.seconds)
    del kept, ballast
    return 0


if __name__ == "__main__":
    sys.exit(main())
