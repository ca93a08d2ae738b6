"""A real Wasmtime to scan, run inside one release's venv: `python child.py [--seconds N]`.

Instantiates components of several shapes in the installed `wasmtime` wheel, each
in its own Store unless said otherwise, prints one line

    ready {"pid": ..., "wheel": ..., "instances": N, "shapes": {...}, "skipped": {...}, ...}

on stdout and sleeps until killed (or its parent dies, or --seconds pass).
`instances` is the number of top-level instantiations (one component context
each; nested component instances live in their parent's context).

Meanwhile (39.0.0 on, `report["flag_shapes"]`) it answers one request per line
on stdin, `flags {"lower_lift": {"flags_at": ADDRESS, "instances": N}, ...}`
(the address of the shape's first flag word, found by the parent's scan), by
calling the shape's export and reading the N flag words (4 bytes each, 16 apart,
through `os.pread` on /proc/self/mem, read-only) at each moment of the sequence
(`flag_sequence`), then printing one line `flags {"lower_lift": {...}, ...}`.
The sequence ends with every flag word as it was at rest.

wasmtime-py has a Python component API from 39.0.0 on; before that (33.0.0-38.x)
the component C API is driven through ctypes on the wheel's own library
(`wasmtime._ffi`). The C API of 33 has no host functions, so shapes that import
one are built without it there (or skipped), and 33-38 instantiate without
calling (the wheels' ctypes bindings leave `wasmtime_component_val_t` empty).
This script imports nothing but the standard library and `wasmtime`.
"""

import argparse
import ctypes
import json
import os
import select
import struct
import sys
import time
import traceback
import warnings

# The WAT below uses the older canonical-option syntax (`(memory $m)`, `(realloc (func $f))`
# on aliases) that every release's `wast` parses; newer ones want this switch for it.
os.environ["WAST_STRICT_COMPONENT_INDICES"] = "0"

from importlib.metadata import version  # noqa: E402

import wasmtime  # noqa: E402
from wasmtime import _ffi as ffi  # noqa: E402

WHEEL = version("wasmtime")
MAJOR = int(WHEEL.split(".")[0])
PY_COMPONENT_API = MAJOR >= 39
HOST_FUNCTIONS = PY_COMPONENT_API or hasattr(ffi, "wasmtime_component_linker_instance_add_func")
ASYNC = hasattr(ffi, "wasmtime_config_wasm_component_model_async_set")


# ----------------------------------------------------------------- components
# Each: WAT with and without host imports (None: the shape needs them), the host
# imports as name -> Python implementation, and a call to make through the Python API.

LOWER_LIFT = """
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


def strings(host):
    """Two memories, a realloc, three post-returns; with `host`, two lowered imports taking strings."""
    imports = """
  (import "len" (func $len (param "s" string) (result u32)))
  (import "peek" (func $peek (param "s" string)))""" if host else ""
    lowered = """
  (core func $len-lowered (canon lower (func $len) (memory $libc-mem)))
  (core func $peek-lowered (canon lower (func $peek) (memory $scratch-mem)))""" if host else ""
    core_imports = """
    (import "host" "len" (func $len (param i32 i32) (result i32)))
    (import "host" "peek" (func $peek (param i32 i32)))""" if host else ""
    call = "local.get $ptr local.get $n call $len drop" if host else ""
    with_host = """
    (with "host" (instance (export "len" (func $len-lowered)) (export "peek" (func $peek-lowered))))""" if host else ""
    return f"""
(component{imports}
  (core module $libc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      global.get $bump
      global.get $bump local.get 3 i32.add global.set $bump))
  (core instance $libc (instantiate $libc))
  (core module $scratch (memory (export "mem") 1))
  (core instance $scratch (instantiate $scratch))
  (alias core export $libc "mem" (core memory $libc-mem))
  (alias core export $libc "realloc" (core func $libc-realloc))
  (alias core export $scratch "mem" (core memory $scratch-mem)){lowered}
  (core module $m
    (import "libc" "mem" (memory 1)){core_imports}
    (func (export "echo") (param $ptr i32) (param $n i32) (result i32)
      {call}
      i32.const 8 local.get $ptr i32.store
      i32.const 12 local.get $n i32.store
      i32.const 8)
    (func (export "post-a") (param i32))
    (func (export "post-b") (param i32))
    (func (export "post-c") (param i32)))
  (core instance $i (instantiate $m
    (with "libc" (instance $libc)){with_host}))
  (alias core export $i "post-a" (core func $post-a))
  (alias core export $i "post-b" (core func $post-b))
  (alias core export $i "post-c" (core func $post-c))
  (func (export "echo") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-a))))
  (func (export "echo-b") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-b))))
  (func (export "echo-c") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory $libc-mem)
      (realloc (func $libc-realloc)) (post-return (func $post-c)))))
"""


def resources(host):
    """Two resource types with guest destructors (with `host`, one dtor calls a host import)."""
    imports = '\n  (import "note" (func $note (param "rep" u32)))' if host else ""
    lowered = '\n  (core func $note-lowered (canon lower (func $note)))' if host else ""
    dtor_import = '\n    (import "host" "note" (func $note (param i32)))' if host else ""
    dtor_body = "local.get 0 call $note" if host else ""
    dtor_with = ' (with "host" (instance (export "note" (func $note-lowered))))' if host else ""
    return f"""
(component{imports}{lowered}
  (core module $dtors{dtor_import}
    (func (export "dtor") (param i32) {dtor_body})
    (func (export "dtor2") (param i32)))
  (core instance $d (instantiate $dtors{dtor_with}))
  (alias core export $d "dtor" (core func $dtor))
  (alias core export $d "dtor2" (core func $dtor2))
  (type $thing (resource (rep i32) (dtor (func $dtor))))
  (type $other (resource (rep i32) (dtor (func $dtor2))))
  (core func $new (canon resource.new $thing))
  (core func $new2 (canon resource.new $other))
  (core func $rep (canon resource.rep $thing))
  (core module $m
    (import "thing" "new" (func $new (param i32) (result i32)))
    (import "thing" "new2" (func $new2 (param i32) (result i32)))
    (import "thing" "rep" (func $rep (param i32) (result i32)))
    (func (export "make") (param i32) (result i32) local.get 0 call $new)
    (func (export "make2") (param i32) (result i32) local.get 0 call $new2))
  (core instance $i (instantiate $m (with "thing" (instance
    (export "new" (func $new)) (export "new2" (func $new2)) (export "rep" (func $rep))))))
  (export $thing-out "thing" (type $thing))
  (export $other-out "other" (type $other))
  (func (export "make") (param "rep" u32) (result (own $thing-out)) (canon lift (core func $i "make")))
  (func (export "make2") (param "rep" u32) (result (own $other-out)) (canon lift (core func $i "make2"))))
"""


def fused_adapter(host):
    """Component A calls component B's lifted export through a lowering: a fused adapter."""
    imports = '\n  (import "log" (func $log (param "x" u32)))' if host else ""
    b_import = '\n    (import "log" (func $log (param "x" u32)))' if host else ""
    b_lowered = '\n    (core func $log-lowered (canon lower (func $log)))' if host else ""
    b_core_import = '\n      (import "host" "log" (func $log (param i32)))' if host else ""
    b_call = "local.get 0 call $log" if host else ""
    b_with = ' (with "host" (instance (export "log" (func $log-lowered))))' if host else ""
    b_inst_with = ' (with "log" (func $log))' if host else ""
    return f"""
(component{imports}
  (component $B{b_import}{b_lowered}
    (core module $m{b_core_import}
      (func (export "double") (param i32) (result i32)
        {b_call} local.get 0 i32.const 2 i32.mul))
    (core instance $i (instantiate $m{b_with}))
    (func (export "double") (param "x" u32) (result u32) (canon lift (core func $i "double"))))
  (component $A
    (import "double" (func $double (param "x" u32) (result u32)))
    (core func $double-lowered (canon lower (func $double)))
    (core module $m
      (import "b" "double" (func $double (param i32) (result i32)))
      (func (export "run") (param i32) (result i32)
        local.get 0 call $double i32.const 1 i32.add))
    (core instance $i (instantiate $m (with "b" (instance (export "double" (func $double-lowered))))))
    (func (export "run") (param "x" u32) (result u32) (canon lift (core func $i "run"))))
  (instance $b (instantiate $B{b_inst_with}))
  (instance $a (instantiate $A (with "double" (func $b "double"))))
  (export "run" (func $a "run")))
"""


# No imports, no resources: no trampoline, so no vmctx field names the context.
LIFT_ONLY = """
(component
  (core module $m (func (export "seven") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func (export "seven") (result u32) (canon lift (core func $i "seven"))))
"""

# Runtime callbacks: needs component-model-async (a C API switch, from 45 on).
ASYNC_CALLBACK = """
(component
  (core module $m
    (func (export "run") (result i32) i32.const 0)
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (alias core export $i "cb" (core func $cb))
  (func (export "run") async (canon lift (core func $i "run") async (callback (func $cb)))))
"""

SHAPES = {
    # name: (wat with host imports, wat without (None: needs them), host imports, calls, instances, async)
    "lower_lift": (LOWER_LIFT, None, {"add": lambda x: x + 100}, [("run", (1,), 102)], 1, False),
    "strings": (strings(True), strings(False), {"len": len, "peek": lambda s: None},
                [("echo-b", ("hello",), "hello")], 1, False),
    "resources": (resources(True), resources(False), {"note": lambda rep: None},
                  [("make", (7,), "drop"), ("make2", (8,), "keep")], 1, False),
    "fused_adapter": (fused_adapter(True), fused_adapter(False), {"log": lambda x: None},
                      [("run", (5,), 11)], 1, False),
    "lift_only": (LIFT_ONLY, LIFT_ONLY, {}, [("seven", (), 7)], 1, False),
    "two_in_one_store": (resources(False), resources(False), {}, [("make2", (1,), "keep")], 2, False),
    "async_callback": (ASYNC_CALLBACK, ASYNC_CALLBACK, {}, [], 1, True),
}


# ------------------------------------------------------------- instantiation
MEMORY_RESERVATION = 16 << 20
MEMORY_GUARD = 64 << 10
_keep = []  # everything a component context depends on, kept alive until the process ends
_instances = {}  # shape -> (store, its first instance), for the flag sequence (Python API only)
_inside = {}  # shape -> what its host imports call first, while a flag sequence runs


def make_engine(component_model_async, default_memories):
    config = wasmtime.Config()
    ptr = config.ptr() if hasattr(config, "ptr") else config._ptr
    if not default_memories:
        # By default each linear memory reserves GiBs of PROT_NONE address space, which gcore
        # writes out in full (about 9 GB a core here). The context does not depend on it.
        ffi.wasmtime_config_memory_reservation_set(ptr, MEMORY_RESERVATION)
        ffi.wasmtime_config_memory_guard_size_set(ptr, MEMORY_GUARD)
    if component_model_async:
        ffi.wasmtime_config_wasm_component_model_async_set(ptr, True)
    return wasmtime.Engine(config)


def _host(shape, impl, args):
    probe = _inside.get(shape)
    if probe is not None:
        probe()
    return impl(*args)


def instantiate_py(shape, engine, store, wat, host, calls, n):
    """Through wasmtime.component (39+): instantiate n times in `store`, then make each call once."""
    from wasmtime.component import Component, Linker, ResourceAny

    component = Component(engine, wat)
    linker = Linker(engine)
    if host:
        with linker.root() as root:
            for name, impl in host.items():
                root.add_func(name, lambda store, *args, impl=impl: _host(shape, impl, args))
    made = []
    for _ in range(n):
        instance = linker.instantiate(store, component)
        _keep.append(instance)
        _instances.setdefault(shape, (store, instance))
        for export, args, expected in calls:
            func = instance.get_func(store, export)
            result = func(store, *args)
            func.post_return(store)
            if isinstance(result, ResourceAny):
                if expected == "drop":
                    result.drop(store)  # runs the guest destructor
                else:
                    _keep.append(result)
            elif result != expected:
                raise AssertionError(f"{export}{args} returned {result!r}, expected {expected!r}")
            made.append(f"{export}{args}")
    _keep.extend([component, linker])
    return made


def _check(error):
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def instantiate_c(shape, engine, store, wat, host, calls, n):
    """Through the component C API (33-38), on the wheel's own bindings: instantiate n times, no calls."""
    data = wasmtime.wat2wasm(wat)
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    component = ctypes.POINTER(ffi.wasmtime_component_t)()
    _check(ffi.wasmtime_component_new(engine.ptr(), buf, len(data), ctypes.byref(component)))
    linker = ffi.wasmtime_component_linker_new(engine.ptr())
    if host:
        from wasmtime import _bindings

        argtypes = _bindings._wasmtime_component_linker_instance_add_func.argtypes
        callback, finalizer = argtypes[3](lambda *args: 0), argtypes[5](lambda *args: None)
        _keep.extend([callback, finalizer])
        root = ffi.wasmtime_component_linker_root(linker)
        for name in host:
            raw = name.encode()
            _check(ffi.wasmtime_component_linker_instance_add_func(
                root, ctypes.create_string_buffer(raw), len(raw), callback, None, finalizer))
        ffi.wasmtime_component_linker_instance_delete(root)
    for _ in range(n):
        instance = ffi.wasmtime_component_instance_t()
        _check(ffi.wasmtime_component_linker_instantiate(linker, store._context(), component,
                                                         ctypes.byref(instance)))
        _keep.append(instance)
    _keep.extend([component, linker, buf])
    return []


# ------------------------------------------------------------ flag sequence
# The shapes whose flag words the parent compares with the emulator's, and the call each makes.
FLAG_CALLS = {"lower_lift": ("run", (1,), 102), "fused_adapter": ("run", (5,), 11)}
FLAG_SLOT = 16  # one VMGlobalDefinition per runtime component instance


def _post_return(func, store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        func.post_return(store)


def flag_sequence(shape, flags_at, n, fd):
    """The shape's n flag words at each moment of: a call (and inside its host import), post_return,
    a call again, a second call without post_return (its error, if any), and post_return if it failed."""
    store, instance = _instances[shape]
    export, args, expected = FLAG_CALLS[shape]
    func = instance.get_func(store, export)

    def words():
        data = os.pread(fd, FLAG_SLOT * n, flags_at)
        if len(data) != FLAG_SLOT * n:
            raise OSError(f"read {len(data)} of {FLAG_SLOT * n} bytes at {flags_at:#x}")
        return [struct.unpack_from("<I", data, FLAG_SLOT * i)[0] for i in range(n)]

    def check(result):
        if result != expected:
            raise AssertionError(f"{export}{args} returned {result!r}, expected {expected!r}")

    def call():
        check(func(store, *args))

    seen = {"rest": words()}
    inside = []
    _inside[shape] = lambda: inside.append(words())
    try:
        call()
    finally:
        _inside.pop(shape, None)
    seen["inside"] = inside  # one list of words per host import call
    seen["after_call"] = words()
    _post_return(func, store)
    seen["after_post_return"] = words()
    call()
    seen["after_call_again"] = words()
    try:
        result = func(store, *args)
    except Exception as e:  # noqa: BLE001 - the outcome is what is measured
        text = str(e).split("\nStack backtrace:")[0].rstrip()  # a backtrace where RUST_BACKTRACE is set
        seen["second_call"] = f"{type(e).__name__}: {text}"
    else:
        check(result)
        seen["second_call"] = None
    seen["after_second_call"] = words()
    if seen["second_call"] is not None:
        _post_return(func, store)
        seen["after_second_post_return"] = words()
    return seen


def answer(line):
    """One request line from the parent, answered on one line."""
    if not line.startswith("flags "):
        return "error " + json.dumps(f"unknown request {line.strip()[:100]!r}")
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    out = {}
    try:
        for shape, spec in json.loads(line[len("flags "):]).items():
            try:
                out[shape] = flag_sequence(shape, int(spec["flags_at"]), int(spec["instances"]), fd)
            except Exception:  # noqa: BLE001 - reported to the parent, the child lives on
                out[shape] = {"error": traceback.format_exc()}
    finally:
        os.close(fd)
    return "flags " + json.dumps(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600, help="how long to wait (default 3600)")
    parser.add_argument("--default-memories", action="store_true",
                        help="keep Wasmtime's default memory reservation (GiBs per memory: huge cores)")
    args = parser.parse_args(argv)
    report = {"pid": os.getpid(), "wheel": WHEEL, "api": "python" if PY_COMPONENT_API else "c",
              "library": ffi.dll._name, "host_functions": HOST_FUNCTIONS,
              "memory_reservation": None if args.default_memories else MEMORY_RESERVATION,
              "instances": 0, "shapes": {}, "skipped": {}, "flag_shapes": []}
    engines = {}
    for name, (with_host, without_host, host, calls, n, needs_async) in SHAPES.items():
        if needs_async and not ASYNC:
            report["skipped"][name] = "no component-model-async switch in this C API"
            continue
        if host and not HOST_FUNCTIONS:
            if without_host is None:
                report["skipped"][name] = "no host functions in this C API"
                continue
            wat, host = without_host, {}
        else:
            wat = with_host
        if needs_async and calls:
            raise AssertionError("the synchronous API cannot call an async export")
        if needs_async not in engines:
            engines[needs_async] = make_engine(needs_async, args.default_memories)
        engine = engines[needs_async]
        store = wasmtime.Store(engine)
        _keep.append(store)
        instantiate = instantiate_py if PY_COMPONENT_API else instantiate_c
        made = instantiate(name, engine, store, wat, host, calls, n)
        report["instances"] += n
        report["shapes"][name] = {"instances": n, "host_imports": sorted(host), "calls": made}
    report["flag_shapes"] = [s for s in FLAG_CALLS if s in _instances and report["shapes"][s]["host_imports"]]
    print("ready " + json.dumps(report), flush=True)
    parent, deadline = os.getppid(), time.monotonic() + args.seconds
    listening = True
    while time.monotonic() < deadline and os.getppid() == parent:  # not past a dead parent
        if not listening:
            time.sleep(1)
            continue
        ready, _, _ = select.select([sys.stdin], [], [], 1)
        if ready:
            line = sys.stdin.readline()
            if line:
                print(answer(line), flush=True)
            else:
                listening = False  # stdin closed: only sleep from now on
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        print("failed", flush=True)
        code = 1
    sys.exit(code)
