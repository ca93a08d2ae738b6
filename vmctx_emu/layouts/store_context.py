"""The struct a component context's header pointer points at, per release, declared once.

The pointer is `limits: *mut VMRuntimeLimits` (v0.40 - v30),
`vm_store_context: *mut VMStoreContext` (v31 - v48) and `store_context` (v49 -
v51); the struct was renamed at v31. One `StoreContextLayout` per range of
releases whose struct is the same, each a literal list of its fields in the
Rust order, with the Rust name and type of that release and a role (what the
value means, `ROLES`). Offsets are computed, never written down:

* v0.40 - v47 (`placement="sum"`): `vmoffsets.rs` hand-writes each
  `vmruntime_limits_*` / `vmstore_context_*` offset as the previous one plus
  that field's size (`self.size()` for a pointer, 8 for an `i64`/`u64`), with
  no alignment step. For pointer sizes 4 and 8 this is also `#[repr(C)]`'s
  placement on the hosts Wasmtime runs on (an `i64` after a 4-byte pointer
  sits at 4 on i686, where it is 4-aligned).
* v48 - v51 (`placement="repr_c"`): `for_each_vm_type!` (environ's
  `vmtypes.rs`) lays the struct out as `#[repr(C, align(8))]`: each field
  aligned to its type (pointer-sized: P, `i64`/`u64`: 8, `u32`: 4), the size
  rounded up to the struct's alignment.

Sources per release tag: `crates/runtime/src/vmcontext.rs` (to v24),
`crates/wasmtime/src/runtime/vm/vmcontext.rs` (v25 on), `crates/environ/src/
vmoffsets.rs`, `crates/environ/src/vmtypes.rs` (v48 on). No patch release
changes the struct (every release tag from v0.40.0 to v48.0.0 read). v49 - v51
are not tags of the fetched history (it ends at 49.0.0-dev): their struct is
the one of the newest stored `vmtypes.rs` (same fields as v48), and the
offsets were measured in the wasmtime-py wheels (tests/releases/STORE_CONTEXT.md).
"""

from functools import lru_cache

from ..errors import InvalidPtrSizeError, UnknownReleaseError
from .record import Record
from .releases import release_key, release_of

__all__ = ["ROLES", "KINDS", "StoreType", "StoreField", "Placed", "StoreContextLayout", "STORE_CONTEXT_LAYOUTS",
           "store_context_layout", "STACK_CHAIN_VARIANTS"]

# Scalar kinds: (size, alignment in a `repr_c` layout); None stands for the pointer size P.
KINDS = {"usize": (None, None), "i64": (8, 8), "u64": (8, 8), "u32": (4, 4)}

# What each field holds, as the releases that have it maintain it (read in each release's runtime:
# `enter_wasm` / `exit_wasm` in func.rs, `catch_traps` and `CallThreadState` in traphandlers.rs, the
# trampolines the compiler emits, `Default for VMStoreContext`).
ROLES = {
    "stack_limit": "lowest stack address wasm may grow to (host SP at entry minus max_wasm_stack); "
                   "usize::MAX while no wasm runs on this store (the Default; restored when the call returns)",
    "fuel_consumed": "fuel consumed, counting up from minus the fuel left; wasm traps (or yields) when it "
                     "passes 0; stays 0 unless fuel is enabled",
    "epoch_deadline": "epoch at or after which wasm traps (or yields) when epoch interruption is enabled",
    "execution_version": "counts returns from host calls into wasm (wasm-to-host trampolines); only with guest "
                         "debugging",
    "gc_heap": "the store's GC heap as a VMMemoryDefinition (base, current_length); base 0x1 (dangling) "
               "and length 0 while there is none",
    "last_wasm_exit_fp": "frame pointer of the last wasm frame when wasm last called the host (set by the "
                         "wasm-to-host trampoline, not cleared when that call returns)",
    "last_wasm_exit_trampoline_fp": "frame pointer of the wasm-to-host trampoline when wasm last called the "
                                    "host (the last wasm frame's FP is saved there); not cleared on return",
    "last_wasm_exit_pc": "return address into wasm of the last call from wasm to the host; not cleared on return",
    "last_wasm_entry_sp": "host stack pointer in the host-to-wasm trampoline at the latest entry into wasm; "
                          "0 when no wasm call is active",
    "last_wasm_entry_fp": "frame pointer of the host-to-wasm trampoline at the latest entry into wasm; "
                          "0 when no wasm call is active",
    "last_wasm_entry_trap_handler": "PC of the entry trampoline's handler that traps resume at; set with "
                                    "the entry SP/FP",
    "stack_chain": "VMStackChain (discriminant, pointer): Absent (0) at rest, InitialStack (1) while a call "
                   "from the host runs (and after it, in v38.0.1 - v47), Continuation (2) on a "
                   "stack-switching continuation",
    "store_data": "address of the embedder's T inside Store<T> (store-data-address intrinsic)",
    "async_guard_range": "start..end of the guard page of the fiber stack in use; null..null without a fiber",
    "component_context": "the component model's context.get/set slots of the current thread (u32 each)",
    "current_thread": "VMLazyThread of the component model's sync adapter fast path: 0 none, low bit set "
                      "forced, else the address of a VMDeferredThread",
}

STACK_CHAIN_VARIANTS = {0: "Absent", 1: "InitialStack", 2: "Continuation"}


class StoreType(Record):
    """A Rust type of a field: its name and the scalars it is made of, `(name, kind)` in order."""

    rust_name: str
    parts: tuple

    def size(self, ptr):
        return sum(_width(kind, ptr) for _, kind in self.parts)

    def align(self, ptr):
        return max(_align(kind, ptr) for _, kind in self.parts)


def _width(kind, ptr):
    size = KINDS[kind][0]
    return ptr if size is None else size


def _align(kind, ptr):
    align = KINDS[kind][1]
    return ptr if align is None else align


def cell(rust_name, kind):
    return StoreType(f"UnsafeCell<{rust_name}>", (("value", kind),))


USIZE = cell("usize", "usize")
I64 = cell("i64", "i64")
U64 = cell("u64", "u64")
PLAIN_U64 = StoreType("u64", (("value", "u64"),))
MEMORY_DEFINITION_PARTS = (("base", "usize"), ("current_length", "usize"))
MEMORY_DEFINITION = StoreType("VMMemoryDefinition", MEMORY_DEFINITION_PARTS)
MEMORY_DEFINITION_CELL = StoreType("UnsafeCell<VMMemoryDefinition>", MEMORY_DEFINITION_PARTS)
# `#[repr(usize, C)] enum VMStackChain`: a usize discriminant, then the variant's pointer.
STACK_CHAIN = StoreType("UnsafeCell<VMStackChain>", (("discriminant", "usize"), ("pointer", "usize")))
VMPTR = StoreType("VmPtr<()>", (("value", "usize"),))
RANGE = StoreType("Range<*mut u8>", (("start", "usize"), ("end", "usize")))
SLOTS = (("slot0", "u32"), ("slot1", "u32"))  # NUM_COMPONENT_CONTEXT_SLOTS = 2 (v45 - v51)
CONTEXT_SLOTS = StoreType("[u32; NUM_COMPONENT_CONTEXT_SLOTS]", SLOTS)
CONTEXT_SLOTS_CELL = StoreType("UnsafeCell<[u32; NUM_COMPONENT_CONTEXT_SLOTS]>", SLOTS)
LAZY_THREAD = StoreType("UnsafeCell<VMLazyThread>", (("value", "usize"),))


class StoreField(Record):
    """One field: its Rust name in that release, its type, and its role (a key of `ROLES`)."""

    name: str
    type: StoreType
    role: str = None

    def __post_init__(self):
        role = self.role or self.name
        if role not in ROLES:
            raise ValueError(f"field {self.name}: unknown role {role!r}")
        self.__dict__["role"] = role


class Placed(Record):
    """A field at its offset for one pointer size: `parts` are `(name, kind, offset)` of its scalars."""

    field: StoreField
    offset: int
    size: int
    parts: tuple

    @property
    def name(self):
        return self.field.name

    @property
    def role(self):
        return self.field.role


class StoreContextLayout(Record):
    """The struct of one range of releases (`first` to `last`, patch releases included).

    `entry_sentinel`: the host-to-wasm trampoline stores usize::MAX as the
    entry SP when the callee is not core wasm (a host function called from the
    host: v0.40 - v8). `clears_exit_on_entry`: `catch_traps` zeroes the exit
    FP/PC (and entry SP) on every entry into wasm and restores them after
    (v0.40 - v8); from v9 on they are saved and restored, not cleared, so
    after a host call returns into wasm they keep its values.
    `stack_chain_left_set`: `enter_wasm` saves the stack chain for its exit
    only after writing `InitialStack` into it (v38.0.1 - v47), so after the
    first call it stays `InitialStack`, pointing at a stack frame long gone
    (measured in 39.0.0 and 45.0.0; v35 - v37 and v48 on save it first, and
    measured 48.0.0 - 51.0.0 show `Absent` after the call).
    """

    id: str
    first: str
    last: str
    rust_struct: str
    repr: str
    placement: str
    fields: tuple
    changes: str
    entry_sentinel: bool = False
    clears_exit_on_entry: bool = False
    stack_chain_left_set: bool = False

    def __post_init__(self):
        if self.placement not in ("sum", "repr_c"):
            raise ValueError(f"{self.id}: placement must be 'sum' or 'repr_c', not {self.placement!r}")

    @property
    def range_text(self):
        return f"v{self.first} - v{self.last}"

    @property
    def struct_align(self):
        """The alignment `#[repr(C, align(n))]` forces (1 without one)."""
        return int(self.repr.partition("align(")[2].rstrip(")") or 1)

    def field(self, role):
        """The field of `role`, or None when this release has none."""
        return next((f for f in self.fields if f.role == role), None)

    def roles(self):
        return tuple(f.role for f in self.fields)

    def placed(self, ptr):
        """Every field at its offset for pointer size `ptr`, in order; see `placed_fields`."""
        return placed_fields(self, ptr)

    def offset(self, role, ptr):
        return next(p.offset for p in self.placed(ptr) if p.role == role)

    def size(self, ptr):
        """Bytes of the struct: the end of its last field, rounded to the struct's alignment in `repr_c`."""
        last = self.placed(ptr)[-1]
        end = last.offset + last.size
        if self.placement == "sum":
            return end
        align = max([self.struct_align] + [f.type.align(ptr) for f in self.fields])
        return -(-end // align) * align

    def __repr__(self):
        return f"<StoreContextLayout {self.id} ({self.range_text})>"


@lru_cache(maxsize=None)
def placed_fields(layout, ptr):
    """The fields of `layout` at their offsets for pointer size `ptr`.

    Offsets are `u8` in Rust (`fn vmstore_context_*(&self) -> u8`); a pointer
    size that puts one past 255 is refused as the Rust would panic.
    """
    if isinstance(ptr, bool) or not isinstance(ptr, int) or ptr <= 0 or ptr & (ptr - 1):
        raise InvalidPtrSizeError(f"pointer size must be a power of two, got {ptr!r}")
    cursor, placed = 0, []
    for f in layout.fields:
        if layout.placement == "repr_c":
            align = f.type.align(ptr)
            cursor = -(-cursor // align) * align
        size = f.type.size(ptr)
        parts, at = [], cursor
        for name, kind in f.type.parts:
            if layout.placement == "repr_c":
                at = -(-at // _align(kind, ptr)) * _align(kind, ptr)
            parts.append((name, kind, at))
            at += _width(kind, ptr)
        if cursor > 255:
            raise InvalidPtrSizeError(f"pointer size {ptr}: {layout.rust_struct}::{f.name} would be at offset "
                                      f"{cursor}, past the u8 offsets of {layout.range_text}")
        placed.append(Placed(f, cursor, size, tuple(parts)))
        cursor += size
    return tuple(placed)


def _fields(*entries):
    return tuple(StoreField(*e) if isinstance(e, tuple) else e for e in entries)


# -- the fields, in the order releases use them -----------------------------------------------

STACK_LIMIT = StoreField("stack_limit", USIZE)
FUEL = StoreField("fuel_consumed", I64)
EPOCH = StoreField("epoch_deadline", U64)
EXECUTION_VERSION = StoreField("execution_version", PLAIN_U64)
EXIT_FP = StoreField("last_wasm_exit_fp", USIZE)
EXIT_TRAMPOLINE_FP = StoreField("last_wasm_exit_trampoline_fp", USIZE)
EXIT_PC = StoreField("last_wasm_exit_pc", USIZE)
ENTRY_SP = StoreField("last_wasm_entry_sp", USIZE)
ENTRY_FP = StoreField("last_wasm_entry_fp", USIZE)
ENTRY_TRAP_HANDLER = StoreField("last_wasm_entry_trap_handler", USIZE)
GC_HEAP = StoreField("gc_heap", MEMORY_DEFINITION)
GC_HEAP_CELL = StoreField("gc_heap", MEMORY_DEFINITION_CELL)
STACK_CHAIN_FIELD = StoreField("stack_chain", STACK_CHAIN)
STORE_DATA = StoreField("store_data", VMPTR)
ASYNC_GUARD_RANGE = StoreField("async_guard_range", RANGE)
COMPONENT_CONTEXT = StoreField("component_context", CONTEXT_SLOTS)
COMPONENT_CONTEXT_CELL = StoreField("component_context", CONTEXT_SLOTS_CELL)
CURRENT_THREAD = StoreField("current_thread", LAZY_THREAD)

RUNTIME_LIMITS_40 = (STACK_LIMIT, FUEL, EPOCH, EXIT_FP, EXIT_PC, ENTRY_SP)
FIRST_64 = (FUEL, EPOCH, STACK_LIMIT)  # v29 on: the 64-bit integers first
ENTRY_3 = (ENTRY_SP, ENTRY_FP, ENTRY_TRAP_HANDLER)
V43_HEAD = (FUEL, EPOCH, EXECUTION_VERSION, STACK_LIMIT)

STORE_CONTEXT_LAYOUTS = (
    StoreContextLayout(
        id="S1", first="0.40.0", last="8.0.1", rust_struct="VMRuntimeLimits", repr="C", placement="sum",
        fields=RUNTIME_LIMITS_40, entry_sentinel=True, clears_exit_on_entry=True,
        changes="first release with the pointer; `catch_traps` clears exit FP/PC and entry SP on each entry; "
                "the asm host-to-wasm trampoline stores usize::MAX as entry SP for a host callee"),
    StoreContextLayout(
        id="S2", first="9.0.0", last="26.0.1", rust_struct="VMRuntimeLimits", repr="C", placement="sum",
        fields=RUNTIME_LIMITS_40,
        changes="same fields; compiled trampolines save the entry SP; exit/entry values saved and restored "
                "around each call into wasm (`CallThreadState`), no longer cleared"),
    StoreContextLayout(
        id="S3", first="27.0.0", last="28.0.1", rust_struct="VMRuntimeLimits", repr="C", placement="sum",
        fields=(STACK_LIMIT, FUEL, EPOCH, EXIT_FP, EXIT_PC, ENTRY_FP),
        changes="`last_wasm_entry_sp` replaced by `last_wasm_entry_fp`"),
    StoreContextLayout(
        id="S4", first="29.0.0", last="30.0.2", rust_struct="VMRuntimeLimits", repr="C", placement="sum",
        fields=FIRST_64 + (EXIT_FP, EXIT_PC, ENTRY_FP),
        changes="64-bit fields first: `stack_limit` moves after `epoch_deadline`"),
    StoreContextLayout(
        id="S5", first="31.0.0", last="32.0.1", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (EXIT_FP, EXIT_PC, ENTRY_FP),
        changes="renamed `VMStoreContext`; same fields"),
    StoreContextLayout(
        id="S6", first="33.0.0", last="34.0.2", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (GC_HEAP, EXIT_FP, EXIT_PC, ENTRY_FP),
        changes="`gc_heap` (a VMMemoryDefinition) after `stack_limit`"),
    StoreContextLayout(
        id="S7", first="35.0.0", last="36.0.22", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (GC_HEAP, EXIT_FP, EXIT_PC, ENTRY_FP, STACK_CHAIN_FIELD, ASYNC_GUARD_RANGE),
        changes="`stack_chain` and `async_guard_range` appended"),
    StoreContextLayout(
        id="S8", first="37.0.0", last="37.0.3", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (GC_HEAP, EXIT_TRAMPOLINE_FP, EXIT_PC, ENTRY_FP, STACK_CHAIN_FIELD, ASYNC_GUARD_RANGE),
        changes="`last_wasm_exit_fp` becomes `last_wasm_exit_trampoline_fp` (the trampoline's FP)"),
    StoreContextLayout(
        id="S9", first="38.0.1", last="38.0.4", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (GC_HEAP, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3 + (STACK_CHAIN_FIELD, ASYNC_GUARD_RANGE),
        stack_chain_left_set=True,
        changes="`last_wasm_entry_sp` (back) and `last_wasm_entry_trap_handler` around `last_wasm_entry_fp`"),
    StoreContextLayout(
        id="S10", first="39.0.0", last="42.0.2", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=FIRST_64 + (GC_HEAP, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE),
        stack_chain_left_set=True,
        changes="`store_data` between `stack_chain` and `async_guard_range`"),
    StoreContextLayout(
        id="S11", first="43.0.0", last="44.0.3", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=V43_HEAD + (GC_HEAP, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE),
        stack_chain_left_set=True,
        changes="`execution_version` (u64) after `epoch_deadline`"),
    StoreContextLayout(
        id="S12", first="45.0.0", last="45.0.3", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=V43_HEAD + (GC_HEAP, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE, COMPONENT_CONTEXT),
        stack_chain_left_set=True,
        changes="`component_context` ([u32; 2]) appended"),
    StoreContextLayout(
        id="S12", first="46.0.0", last="46.0.3", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=V43_HEAD + (GC_HEAP_CELL, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE, COMPONENT_CONTEXT),
        stack_chain_left_set=True,
        changes="`gc_heap` wrapped in UnsafeCell (same bytes)"),
    StoreContextLayout(
        id="S13", first="47.0.0", last="47.0.4", rust_struct="VMStoreContext", repr="C", placement="sum",
        fields=V43_HEAD + (GC_HEAP_CELL, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE, COMPONENT_CONTEXT_CELL, CURRENT_THREAD),
        stack_chain_left_set=True,
        changes="`current_thread` (VMLazyThread) appended; `component_context` in UnsafeCell"),
    StoreContextLayout(
        id="S13", first="48.0.0", last="51.0.0", rust_struct="VMStoreContext", repr="C, align(8)",
        placement="repr_c",
        fields=V43_HEAD + (GC_HEAP_CELL, EXIT_TRAMPOLINE_FP, EXIT_PC) + ENTRY_3
        + (STACK_CHAIN_FIELD, STORE_DATA, ASYNC_GUARD_RANGE, COMPONENT_CONTEXT_CELL, CURRENT_THREAD),
        changes="declared in `for_each_vm_type!` as #[repr(C, align(8))]: offsets from the types, same bytes"),
)


def store_context_layout(version):
    """The `StoreContextLayout` of a release ("48.0.2", "v21", "0.40.1"); the seed has no such pointer."""
    release = release_of(version)
    if release == "seed":
        raise UnknownReleaseError("the seed (commit 97894bc65e) has no VMRuntimeLimits pointer in its component "
                                  "context: the store context starts at v0.40.0", version=str(version))
    key = release_key(release)
    for layout in STORE_CONTEXT_LAYOUTS:
        if release_key(layout.first) <= key <= release_key(layout.last):
            return layout
    raise UnknownReleaseError(f"Wasmtime {release} has no declared store context", version=str(version))
