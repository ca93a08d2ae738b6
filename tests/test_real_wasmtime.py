"""Our offsets and initial bytes against the contexts real Wasmtime 50 builds in this process.

Wasmtime allocates each component instance as a `#[repr(C)] ComponentInstance` whose last
field is the `VMComponentContext`. Just before the context it keeps a copy of the
`VMComponentOffsets` it computed for that component. Here we instantiate real components
through wasmtime-py, find every live context by reading this process's memory
(`/proc/self/maps` plus `pread` on `/proc/self/mem`, read-only, never written), and check:

* `layout.offsets(8, **stored counts)` gives every offset the runtime stored;
* an `OwnedComponentInstance` built from the same counts has the bytes the runtime
  writes as constants: the magic, its padding, the two header words, and the may_leave
  flags at rest.

The ComponentInstance layout and the liveness checks are the ones found by probing
wasmtime-py 49.0.0 and 50.0.1 (Wasmtime 49/50) on x86-64 Linux.
"""

import itertools
import os
import platform
import struct
import sys
from dataclasses import dataclass, field
from importlib.metadata import version

import pytest

wasmtime = pytest.importorskip("wasmtime")

WASMTIME = version("wasmtime")
if not WASMTIME.startswith("50."):
    pytest.skip(f"needs wasmtime 50.x, found {WASMTIME}", allow_module_level=True)
if sys.platform != "linux" or platform.machine() != "x86_64":
    pytest.skip("reads /proc/self/mem; layout facts are for x86-64 Linux", allow_module_level=True)

from wasmtime import _ffi  # noqa: E402  (private, but the only switch for component-model-async)
from wasmtime.component import Component, Linker, ResourceAny  # noqa: E402

from vmctx_emu import OwnedComponentInstance, wasmtime_layout  # noqa: E402
from vmctx_emu.live.example import COMPONENT  # noqa: E402

PTR = 8
MAGIC = b"comp"
FUNCREF_VMCTX = 24  # VMFuncRef on x86-64: array_call, wasm_call, type index (u32 + pad), vmctx
FLAG_SLOT = 16  # each may_leave flag is a 16-byte VMGlobalDefinition

# The ComponentInstance just before the context, as u32 fields at ctx-relative offsets:
# the instance id, then the stored VMComponentOffsets in declaration order, ten counts
# followed by eleven offsets (the last is the context size, at ctx-108).
ID_AT = -192
STORED_COUNTS = (
    "num_lowerings", "num_runtime_memories", "num_runtime_tables", "num_runtime_reallocs",
    "num_runtime_callbacks", "num_runtime_post_returns", "num_runtime_component_instances",
    "num_trampolines", "num_unsafe_intrinsics", "num_resources",
)
STORED_OFFSETS = (
    "may_leave", "trampoline_func_refs", "intrinsic_func_refs", "lowerings", "memories",
    "tables", "reallocs", "callbacks", "post_returns", "resource_destructors", "size",
)
COPY_AT = ID_AT + 4
COPY_FORMAT = f"<{len(STORED_COUNTS) + len(STORED_OFFSETS)}I"
SELF_PTR_AT = -16  # the ComponentInstance keeps the context's own address here
# Zero in every component the Python API can build: runtime tables need thread.new-indirect,
# unsafe intrinsics are Rust-only.
ALWAYS_ZERO = {"num_runtime_tables", "num_unsafe_intrinsics"}


# ------------------------------------------------------------------ components

LOWER_LIFT = COMPONENT  # the example a newcomer scans: one host import, lowered, lifted

# Two memories, one realloc and three post-returns, so these counts differ from each other.
MEMORY_REALLOC_POST_RETURN = """
(component
  (import "len" (func $len (param "s" string) (result u32)))
  (import "peek" (func $peek (param "s" string)))
  (core module $libc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      global.get $bump
      global.get $bump local.get 3 i32.add global.set $bump))
  (core instance $libc (instantiate $libc))
  (core module $scratch (memory (export "mem") 1))
  (core instance $scratch (instantiate $scratch))
  (core func $len-lowered (canon lower (func $len) (memory (core memory $libc "mem"))))
  (core func $peek-lowered (canon lower (func $peek) (memory (core memory $scratch "mem"))))
  (core module $m
    (import "libc" "mem" (memory 1))
    (import "host" "len" (func $len (param i32 i32) (result i32)))
    (import "host" "peek" (func $peek (param i32 i32)))
    (func (export "echo") (param $ptr i32) (param $n i32) (result i32)
      local.get $ptr local.get $n call $len drop
      i32.const 8 local.get $ptr i32.store
      i32.const 12 local.get $n i32.store
      i32.const 8)
    (func (export "post-a") (param i32))
    (func (export "post-b") (param i32))
    (func (export "post-c") (param i32)))
  (core instance $i (instantiate $m
    (with "libc" (instance $libc))
    (with "host" (instance (export "len" (func $len-lowered)) (export "peek" (func $peek-lowered))))))
  (func (export "echo") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory (core memory $libc "mem"))
      (realloc (core func $libc "realloc")) (post-return (core func $i "post-a"))))
  (func (export "echo-b") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory (core memory $libc "mem"))
      (realloc (core func $libc "realloc")) (post-return (core func $i "post-b"))))
  (func (export "echo-c") (param "s" string) (result string)
    (canon lift (core func $i "echo") (memory (core memory $libc "mem"))
      (realloc (core func $libc "realloc")) (post-return (core func $i "post-c")))))
"""

RESOURCE_DTOR = """
(component
  (import "note" (func $note (param "rep" u32)))
  (core func $note-lowered (canon lower (func $note)))
  (core module $dtors
    (import "host" "note" (func $note (param i32)))
    (func (export "dtor") (param i32) local.get 0 call $note))
  (core instance $d (instantiate $dtors (with "host" (instance (export "note" (func $note-lowered))))))
  (type $thing (resource (rep i32) (dtor (core func $d "dtor"))))
  (core func $new (canon resource.new $thing))
  (core module $m
    (import "thing" "new" (func $new (param i32) (result i32)))
    (func (export "make") (param i32) (result i32) local.get 0 call $new))
  (core instance $i (instantiate $m (with "thing" (instance (export "new" (func $new))))))
  (export $thing-out "thing" (type $thing))
  (func (export "make") (param "rep" u32) (result (own $thing-out)) (canon lift (core func $i "make"))))
"""

NESTED_FUSED_ADAPTER = """
(component
  (import "log" (func $log (param "x" u32)))
  (component $B
    (import "log" (func $log (param "x" u32)))
    (core func $log-lowered (canon lower (func $log)))
    (core module $m
      (import "host" "log" (func $log (param i32)))
      (func (export "double") (param i32) (result i32)
        local.get 0 call $log local.get 0 i32.const 2 i32.mul))
    (core instance $i (instantiate $m (with "host" (instance (export "log" (func $log-lowered))))))
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
  (instance $b (instantiate $B (with "log" (func $log))))
  (instance $a (instantiate $A (with "double" (func $b "double"))))
  (export "run" (func $a "run")))
"""


# The only way to a runtime callback (and a context with no trampolines). Needs
# component-model-async, which wasmtime-py switches on only through its C bindings.
ASYNC_CALLBACK = """
(component
  (core module $m
    (func (export "run") (result i32) i32.const 0)
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func (export "run") async (canon lift (core func $i "run") async (callback (core func $i "cb")))))
"""


@dataclass(frozen=True)
class Call:
    """One call into an export, its result and the host imports it runs, as (import, argument)."""

    export: str
    args: tuple
    returns: object  # ResourceAny means: an own handle, which the test then drops
    host_log: list


@dataclass(frozen=True)
class Shape:
    """A component, its host imports, and how to exercise it."""

    wat: str
    host: dict  # import name -> Python implementation
    call: Call | None  # None: the sync API cannot call an async-lifted export
    instances: int = 1  # top-level instantiations in the shape's one Store
    component_model_async: bool = False


ADD = {"add": lambda x: x + 100}
SHAPES = {
    "lower_lift": Shape(LOWER_LIFT, ADD, Call("run", (1,), 102, [("add", 1)])),
    "memory_realloc_post_return": Shape(
        MEMORY_REALLOC_POST_RETURN,
        {"len": len, "peek": lambda s: None},
        Call("echo-b", ("hello",), "hello", [("len", "hello")]),
    ),
    "resource_dtor": Shape(RESOURCE_DTOR, {"note": lambda rep: None}, Call("make", (7,), ResourceAny, [("note", 7)])),
    "nested_fused_adapter": Shape(NESTED_FUSED_ADAPTER, {"log": lambda x: None}, Call("run", (5,), 11, [("log", 5)])),
    "two_instances_one_store": Shape(LOWER_LIFT, ADD, Call("run", (2,), 103, [("add", 2)]), instances=2),
    "async_callback": Shape(ASYNC_CALLBACK, {}, None, component_model_async=True),
}


def make_engine(component_model_async):
    config = wasmtime.Config()
    if component_model_async:
        _ffi.wasmtime_config_wasm_component_model_async_set(config.ptr(), True)
    return wasmtime.Engine(config)


# ------------------------------------------------------------- process memory

class ProcessMemory:
    """Read-only access to this process: `/proc/self/maps` and `pread` on `/proc/self/mem`."""

    CHUNK = 1 << 22

    def __init__(self):
        self.fd = os.open("/proc/self/mem", os.O_RDONLY)

    def close(self):
        os.close(self.fd)

    def read(self, addr, n):
        try:
            return os.pread(self.fd, n, addr)
        except OSError:
            return b""

    def u64(self, addr):
        data = self.read(addr, 8)
        return struct.unpack("<Q", data)[0] if len(data) == 8 else None

    @staticmethod
    def mappings():
        """(start, end, permissions, path) for every mapping."""
        out = []
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""))
        return out

    def find_live_contexts(self):
        """Addresses of live component contexts.

        A candidate is a 16-aligned b"comp" in a writable mapping whose +8 word (builtins)
        points into libwasmtime. Our own read buffers hold copies of contexts, so it must
        also be live: trampoline func ref 0's vmctx is the candidate itself (or, with no
        trampolines, the ComponentInstance's self pointer is).
        """
        maps = self.mappings()
        lib = [(lo, hi) for lo, hi, _, path in maps if path.endswith("_libwasmtime.so")]
        candidates = []
        for lo, hi, perms, path in maps:
            if not perms.startswith("rw") or path.endswith("_libwasmtime.so") or path.startswith("[v"):
                continue
            for start in range(lo, hi, self.CHUNK):
                buf = self.read(start, min(self.CHUNK, hi - start))
                i = buf.find(MAGIC)
                while i >= 0:
                    addr = start + i
                    builtins = self.u64(addr + 8) if addr % 16 == 0 else None
                    if builtins is not None and any(a <= builtins < b for a, b in lib):
                        candidates.append(addr)
                    i = buf.find(MAGIC, i + 1)
        return [addr for addr in candidates if self.is_live(addr)]

    def is_live(self, ctx):
        stored = self.read(ctx + COPY_AT, struct.calcsize(COPY_FORMAT))
        if len(stored) != struct.calcsize(COPY_FORMAT):
            return False
        counts, offsets = split_copy(stored)
        if not offsets["trampoline_func_refs"] < offsets["size"] < 1 << 20:
            return False
        if counts["num_trampolines"]:
            return self.u64(ctx + offsets["trampoline_func_refs"] + FUNCREF_VMCTX) == ctx
        return self.u64(ctx + SELF_PTR_AT) == ctx


def split_copy(data):
    """The stored VMComponentOffsets copy as ({count: value}, {offset name: value})."""
    values = struct.unpack(COPY_FORMAT, data)
    n = len(STORED_COUNTS)
    return dict(zip(STORED_COUNTS, values[:n])), dict(zip(STORED_OFFSETS, values[n:]))


@dataclass
class LiveContext:
    """One live context, read right after instantiation (no call has run yet)."""

    addr: int
    id: int
    counts: dict
    offsets: dict
    image: bytes  # the whole context, `offsets["size"]` bytes

    @classmethod
    def read(cls, mem, addr):
        (instance_id,) = struct.unpack("<I", mem.read(addr + ID_AT, 4))
        counts, offsets = split_copy(mem.read(addr + COPY_AT, struct.calcsize(COPY_FORMAT)))
        return cls(addr, instance_id, counts, offsets, mem.read(addr, offsets["size"]))

    def word(self, at):
        return struct.unpack_from("<Q", self.image, at)[0]


@dataclass
class Run:
    """A shape's Store, instances and contexts; holding it keeps them alive."""

    store: object
    instances: list
    contexts: list
    log: list
    keep: tuple = field(repr=False)


@pytest.fixture(scope="module")
def live():
    """Instantiate every shape (one Store each) and attribute new live contexts to it.

    The process is scanned before anything is instantiated and after each shape, so a
    context counts for the shape whose instantiation made it appear.
    """
    mem = ProcessMemory()
    try:
        engines = {flag: make_engine(flag) for flag in (False, True)}
        # A context is known by (address, store_context word): a context an earlier test freed can
        # leave its bytes behind, and a new one may be allocated at the same address in another Store.
        baseline = identities(mem, mem.find_live_contexts())
        seen = set(baseline)
        runs = {}
        for name, shape in SHAPES.items():
            engine = engines[shape.component_model_async]
            store = wasmtime.Store(engine)
            component = Component(engine, shape.wat)
            linker = Linker(engine)
            log = []
            with linker.root() as root:
                for import_name, impl in shape.host.items():
                    root.add_func(import_name, recorder(log, import_name, impl))
            instances = [linker.instantiate(store, component) for _ in range(shape.instances)]
            fresh = identities(mem, mem.find_live_contexts()) - seen
            new = [LiveContext.read(mem, a) for a, _ in fresh]
            seen.update(fresh)
            runs[name] = Run(store, instances, sorted(new, key=lambda c: c.id), log, (engine, component, linker))
        yield mem, baseline, runs
    finally:
        mem.close()


def identities(mem, addresses):
    return {(a, mem.u64(a + 16)) for a in addresses}


def recorder(log, name, impl):
    def host(store, arg):
        log.append((name, arg))
        return impl(arg)

    return host


def layout():
    return wasmtime_layout(WASMTIME)


def our_offset(offsets, name):
    return offsets.size_of_vmctx() if name == "size" else offsets.region(name).offset


def emulated(ctx):
    """Our instance for the live context's counts, given the live header pointers."""
    header = {"builtins": ctx.word(8), "store_context": ctx.word(16)}
    return OwnedComponentInstance(ctx.counts, wasmtime=WASMTIME, debug_assertions=False, header=header)


def constant_spans(ctx):
    """(label, start, end) of every byte range the runtime initialises to a known value.

    Positions come from the runtime's stored offsets, so a misplaced field in our
    layout shows up as a byte mismatch.
    """
    spans = [("magic", 0, 4), ("magic padding", 4, 8), ("builtins", 8, 16), ("store_context", 16, 24)]
    flags = ctx.offsets["may_leave"]
    for i in range(ctx.counts["num_runtime_component_instances"]):
        spans.append((f"may_leave[{i}]", flags + FLAG_SLOT * i, flags + FLAG_SLOT * (i + 1)))
    return spans


# ----------------------------------------------------------------------- tests

@pytest.mark.parametrize("shape", SHAPES)
def test_one_context_per_instantiation(live, shape):
    """Each top-level instantiation makes exactly one live context (nested ones add none)."""
    _, _, runs = live
    assert len(runs[shape].contexts) == SHAPES[shape].instances


def test_every_live_context_is_accounted_for(live):
    """A final scan finds exactly the contexts attributed to the shapes: none moved or vanished."""
    mem, baseline, runs = live
    ours = {(c.addr, c.word(16)) for run in runs.values() for c in run.contexts}
    assert len(ours) == sum(shape.instances for shape in SHAPES.values())
    assert identities(mem, mem.find_live_contexts()) - baseline == ours


def test_header_words_follow_process_and_store(live):
    """builtins is one per process; store_context is shared within a Store and differs across Stores.

    This also shows the two instances of one shape really share one Store.
    """
    _, _, runs = live
    contexts = [c for run in runs.values() for c in run.contexts]
    assert len({c.word(8) for c in contexts}) == 1
    stores = {name: {c.word(16) for c in run.contexts} for name, run in runs.items()}
    assert all(len(s) == 1 for s in stores.values()), stores
    assert len(set().union(*stores.values())) == len(SHAPES)


def test_shapes_tell_the_counts_apart(live):
    """Every two counts differ in some context, so a count sizing the wrong section would move an offset."""
    _, _, runs = live
    contexts = [c for run in runs.values() for c in run.contexts]
    alike = [
        (a, b)
        for a, b in itertools.combinations(STORED_COUNTS, 2)
        if {a, b} != ALWAYS_ZERO and all(c.counts[a] == c.counts[b] for c in contexts)
    ]
    assert alike == []


@pytest.mark.parametrize("name", STORED_OFFSETS)
@pytest.mark.parametrize("shape", SHAPES)
def test_offsets_match_runtime_copy(live, shape, name):
    """layout.offsets(8, **stored counts) reproduces the offset Wasmtime stored for this field."""
    _, _, runs = live
    for ctx in runs[shape].contexts:
        ours = layout().offsets(PTR, **ctx.counts)
        assert our_offset(ours, name) == ctx.offsets[name], f"instance id {ctx.id}, counts {ctx.counts}"


@pytest.mark.parametrize("shape", SHAPES)
def test_initial_bytes_match_runtime(live, shape):
    """Our freshly built context equals the live one wherever the runtime writes a constant."""
    _, _, runs = live
    for ctx in runs[shape].contexts:
        ours = emulated(ctx).to_bytes()
        assert len(ours) == ctx.offsets["size"]
        assert {label: ours[a:b].hex() for label, a, b in constant_spans(ctx)} == {
            label: ctx.image[a:b].hex() for label, a, b in constant_spans(ctx)
        }


@pytest.mark.parametrize("shape", [name for name, shape in SHAPES.items() if shape.call])
def test_may_leave_at_rest_after_calls(live, shape):
    """After real calls (host imports, adapters, post-return, a dtor) every flag is back to our initial value."""
    mem, _, runs = live
    run, call = runs[shape], SHAPES[shape].call
    for instance in run.instances:
        del run.log[:]
        func = instance.get_func(run.store, call.export)
        result = func(run.store, *call.args)
        func.post_return(run.store)
        if call.returns is ResourceAny:
            assert isinstance(result, ResourceAny)
            result.drop(run.store)  # runs the guest dtor, which calls the host
        else:
            assert result == call.returns
        assert run.log == call.host_log
    for ctx in run.contexts:
        ours = emulated(ctx).to_bytes()
        flags = [(label, a, b) for label, a, b in constant_spans(ctx) if label.startswith("may_leave")]
        assert {label: ours[a:b].hex() for label, a, b in flags} == {
            label: mem.read(ctx.addr + a, b - a).hex() for label, a, b in flags
        }
