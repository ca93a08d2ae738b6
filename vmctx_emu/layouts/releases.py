"""Every released `VMComponentContext` layout, each one more declaration in the seed's form.

Facts read from `crates/environ/src/component/vmcomponent_offsets.rs`,
`crates/environ/src/vmoffsets.rs` (PtrSize sizes) and the runtime's
`initialize_vmctx` at each release tag; the variants below split a table row
wherever a rename changes accessor names. The seed (commit 97894bc65e) is the
default everywhere.
"""

import re
from dataclasses import dataclass, field as dc_field
from functools import cached_property

from .component import make_component_class
from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NAMES, VMCOMPONENT_MAGIC
from .fields import SEED_FIELDS, Align, Field
from .types import (
    MAGIC_U32,
    PTR,
    STORE_FAT_PTR,
    VM_FUNC_REF_4,
    VM_FUNC_REF_5,
    VMCALLER_CHECKED_ANYFUNC,
    VMCALLER_CHECKED_ANYFUNC_PTR,
    VMGLOBAL_DEFINITION,
    VMGLOBAL_I32,
    VMLOWERING,
    VMMEMORY_DEFINITION_PTR,
    VMTABLE,
    VMTABLE_IMPORT,
    PtrUnits,
    pointer_type,
)

__all__ = ["WasmtimeLayout", "LAYOUTS", "SEED", "wasmtime_layout", "supported_ranges"]

# Released versions (from the release tags): "major.minor" -> (first patch, last patch).
# v38.0.0 has no release tag; v38 starts at 38.0.1.
RELEASE_PATCHES = {
    "0.40": (0, 1), "1.0": (0, 2), "2.0": (0, 2), "3.0": (0, 1), "4.0": (0, 1), "5.0": (0, 1),
    "6.0": (0, 2), "7.0": (0, 1), "8.0": (0, 1), "9.0": (0, 4), "10.0": (0, 2), "11.0": (0, 2),
    "12.0": (0, 2), "13.0": (0, 1), "14.0": (0, 4), "15.0": (0, 1), "16.0": (0, 0), "17.0": (0, 3),
    "18.0": (0, 4), "19.0": (0, 2), "20.0": (0, 2), "21.0": (0, 2), "22.0": (0, 1), "23.0": (0, 3),
    "24.0": (0, 13), "25.0": (0, 3), "26.0": (0, 1), "27.0": (0, 0), "28.0": (0, 1), "29.0": (0, 1),
    "30.0": (0, 2), "31.0": (0, 0), "32.0": (0, 1), "33.0": (0, 2), "34.0": (0, 2), "35.0": (0, 0),
    "36.0": (0, 14), "37.0": (0, 3), "38.0": (1, 4), "39.0": (0, 2), "40.0": (0, 4), "41.0": (0, 4),
    "42.0": (0, 2), "43.0": (0, 2), "44.0": (0, 3), "45.0": (0, 3), "46.0": (0, 3), "47.0": (0, 4),
    "48.0": (0, 0),
}


def _key(version):
    return tuple(int(x) for x in version.split("."))


ALL_RELEASES = tuple(
    f"{mm}.{patch}" for mm, (lo, hi) in RELEASE_PATCHES.items() for patch in range(lo, hi + 1)
)


# -- declaration pieces -------------------------------------------------------

MAGIC = Field("magic", MAGIC_U32, base="magic", init=(("magic", VMCOMPONENT_MAGIC),))
STORE = Field("store", STORE_FAT_PTR, base="store", init=(("data", ("store", 0)), ("vtable", ("store", 1))))


def header(name, rust_type):
    """A pointer `initialize_vmctx` writes from a caller-supplied value."""
    return Field(name, pointer_type(rust_type, f"vmctx_{name}_ptr"), base=name, init=(("ptr", (name, None)),))


def flags(name="flags", element="instance_flags", init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE):
    return Field(name, VMGLOBAL_DEFINITION, "num_runtime_component_instances", element=element,
                 init=(("flags", init),))


def func_refs(name, etype, count, base, element):
    """A func-ref array; a debug build poisons only each entry's first word."""
    return Field(name, etype, count, base=base, element=element, poison=(etype.subfields[0].name,))


def pointers(name, rust_type, count, base, element, poisoned=True):
    return Field(name, pointer_type(rust_type, f"vmctx_{name}_ptr"), count, base=base, element=element,
                 poison=("ptr",) if poisoned else ())


LOWERINGS = Field("lowerings", VMLOWERING, "num_lowerings", base="lowerings", element="lowering",
                  subfield_accessors=True, poison=("callee", "data"))
MEMORIES = Field("memories", VMMEMORY_DEFINITION_PTR, "num_runtime_memories", base="runtime_memories",
                 element="runtime_memory", poison=("ptr",))
REALLOCS_ANYFUNC = Field("reallocs", VMCALLER_CHECKED_ANYFUNC_PTR, "num_runtime_reallocs",
                         base="runtime_reallocs", element="runtime_realloc", poison=("ptr",))
POST_RETURNS_ANYFUNC = Field("post_returns", VMCALLER_CHECKED_ANYFUNC_PTR, "num_runtime_post_returns",
                             base="runtime_post_returns", element="runtime_post_return", poison=("ptr",))
REALLOCS = pointers("reallocs", "*mut VMFuncRef", "num_runtime_reallocs", "runtime_reallocs", "runtime_realloc")
CALLBACKS = pointers("callbacks", "*mut VMFuncRef", "num_runtime_callbacks", "runtime_callbacks",
                     "runtime_callback")
POST_RETURNS = pointers("post_returns", "*mut VMFuncRef", "num_runtime_post_returns", "runtime_post_returns",
                        "runtime_post_return")
RESOURCE_DESTRUCTORS = pointers("resource_destructors", "*mut VMFuncRef", "num_resources",
                                "resource_destructors", "resource_destructor")
TASK_MAY_BLOCK = Field("task_may_block", VMGLOBAL_I32, base="task_may_block")


def tables(etype, poison):
    return Field("tables", etype, "num_runtime_tables", base="runtime_tables", element="runtime_table",
                 poison=poison)


def anyfunc_arrays(etype, suffix, with_transcoders):
    names = [("lowering", "num_lowerings"), ("always_trap", "num_always_trap")]
    if with_transcoders:
        names.append(("transcoder", "num_transcoders"))
    return tuple(func_refs(f"{n}_{suffix}s", etype, c, f"{n}_{suffix}s", f"{n}_{suffix}") for n, c in names)


def trampolines(etype):
    return func_refs("trampoline_func_refs", etype, "num_trampolines", "trampoline_func_refs", "trampoline_func_ref")


INTRINSICS = func_refs("intrinsic_func_refs", VM_FUNC_REF_4, "num_unsafe_intrinsics",
                       "unsafe_intrinsic_func_refs", "unsafe_intrinsic_func_ref")

SEED_COUNTS = ("num_lowerings", "num_runtime_memories", "num_runtime_reallocs", "num_runtime_post_returns",
               "num_runtime_component_instances", "num_always_trap")
TRANSCODER_COUNTS = SEED_COUNTS + ("num_transcoders",)
TRAMPOLINE_COUNTS = ("num_lowerings", "num_runtime_memories", "num_runtime_reallocs",
                     "num_runtime_post_returns", "num_runtime_component_instances", "num_trampolines",
                     "num_resources")
CALLBACK_COUNTS = ("num_lowerings", "num_runtime_memories", "num_runtime_reallocs", "num_runtime_callbacks",
                   "num_runtime_post_returns", "num_runtime_component_instances", "num_trampolines",
                   "num_resources")
TABLE_COUNTS = ("num_lowerings", "num_runtime_memories", "num_runtime_tables", "num_runtime_reallocs",
                "num_runtime_callbacks", "num_runtime_post_returns", "num_runtime_component_instances",
                "num_trampolines", "num_resources")
INTRINSIC_COUNTS = TABLE_COUNTS[:-1] + ("num_unsafe_intrinsics", "num_resources")

ALL_FLAGS = FLAG_NAMES
MAY_LEAVE_ONLY = ((FLAG_MAY_LEAVE, "MAY_LEAVE"),)


# -- the layouts ----------------------------------------------------------------

@dataclass(frozen=True)
class WasmtimeLayout:
    """One release range's `VMComponentOffsets`: its declaration and runtime facts.

    `u8_multiple` is the largest `k` of a `k * ptr.size()` that Rust computes
    in `u8` for this release: pointer sizes whose product overflows are
    rejected like the Rust panic.
    """

    id: str
    first: str  # this declaration's first and last release (a rename can split an id)
    last: str
    fields: tuple
    count_names: tuple
    u8_multiple: int
    changes: str
    flag_bits: tuple = ALL_FLAGS
    methods: dict = dc_field(default_factory=dict)  # extra `name -> PtrUnits` constant methods

    @property
    def releases(self):
        """Every release of this id (the table's row), renamed variants included."""
        if self.id == "seed":
            return ()
        same = [layout for layout in LAYOUTS if layout.id == self.id]
        lo, hi = min(_key(x.first) for x in same), max(_key(x.last) for x in same)
        return tuple(v for v in ALL_RELEASES if lo <= _key(v) <= hi)

    @property
    def variant_releases(self):
        """The releases whose accessors carry exactly this declaration's names."""
        if self.id == "seed":
            return ()
        lo, hi = _key(self.first), _key(self.last)
        return tuple(v for v in ALL_RELEASES if lo <= _key(v) <= hi)

    @property
    def range_text(self):
        return "commit 97894bc65e" if self.id == "seed" else f"v{self.first} - v{self.last}"

    @property
    def flag_mask(self):
        """Every flag bit this release defines, or-ed together."""
        return sum(bit for bit, _ in self.flag_bits)

    @property
    def valid_ptr_sizes(self):
        return tuple(1 << k for k in range(8) if self.u8_multiple * (1 << k) <= 0xFF)

    @cached_property
    def component_class(self):
        if self.id == "seed":
            from .component import Component

            return Component
        return make_component_class(f"Component_{self.id}_{self.first}", self.count_names)

    @cached_property
    def offsets_class(self):
        if self.id == "seed":
            from .offsets import VMComponentOffsets

            return VMComponentOffsets
        from .offsets import make_offsets_class

        return make_offsets_class("VMComponentOffsets", self.fields, self.count_names,
                                  methods=self.methods, valid_ptr_sizes=self.valid_ptr_sizes, layout=self)

    def component(self, **counts):
        return self.component_class(**counts)

    def offsets(self, ptr, **counts):
        """That release's `VMComponentOffsets` for pointer size `ptr` and these counts (missing = 0)."""
        return self.offsets_class(ptr, self.component(**counts))

    def header_names(self):
        return tuple(n for n in (f.header_name() for f in self.fields if isinstance(f, Field)) if n)

    def __repr__(self):
        return f"<WasmtimeLayout {self.id} ({self.range_text})>"


def _seed_like(limits):
    out = list(SEED_FIELDS)
    if limits:
        out.insert(out.index(next(f for f in out if isinstance(f, Field) and f.name == "store")) + 1,
                   header("limits", "*mut VMRuntimeLimits"))
    return tuple(out)


def _transcoder_era(etype, suffix):
    return (MAGIC, Align(PTR), header("transcode_libcalls", "*mut VMComponentTranscodeLibcalls"), STORE,
            header("limits", "*mut VMRuntimeLimits"), Align(16), flags(), Align(PTR),
            *anyfunc_arrays(etype, suffix, True), LOWERINGS, MEMORIES, REALLOCS_ANYFUNC, POST_RETURNS_ANYFUNC)


def _trampoline_era(etype, libcalls):
    return (MAGIC, Align(PTR), header(libcalls, f"*mut VMComponent{libcalls.capitalize()}"), STORE,
            header("limits", "*mut VMRuntimeLimits"), Align(16), flags(), Align(PTR), trampolines(etype),
            LOWERINGS, MEMORIES, REALLOCS, POST_RETURNS, RESOURCE_DESTRUCTORS)


def _callback_era(context, table=None, intrinsics=False, task_may_block=False, flag_name="flags",
                  flag_element="instance_flags", flag_init=FLAG_MAY_ENTER | FLAG_MAY_LEAVE):
    context_type = "*mut VMRuntimeLimits" if context == "limits" else "*mut VMStoreContext"
    out = [MAGIC, Align(PTR), header("builtins", "*mut VMComponentBuiltins"), header(context, context_type),
           Align(16), flags(flag_name, flag_element, flag_init)]
    if task_may_block:
        out.append(TASK_MAY_BLOCK)
    out += [Align(PTR), trampolines(VM_FUNC_REF_4)]
    if intrinsics:
        out.append(INTRINSICS)
    out += [LOWERINGS, MEMORIES]
    if table is not None:
        out.append(table)
    out += [REALLOCS, CALLBACKS, POST_RETURNS, RESOURCE_DESTRUCTORS]
    return tuple(out)


TABLE_L7 = tables(VMTABLE, ("from",))
TABLE_L8 = tables(VMTABLE_IMPORT, ("from",))
TABLE_L9 = tables(VMTABLE_IMPORT, ("from", "vmctx"))

SEED = WasmtimeLayout("seed", "", "", SEED_FIELDS, SEED_COUNTS, 3, "the layout in shared/seed/")
LAYOUTS = (
    SEED,
    WasmtimeLayout("L1", "0.40.0", "0.40.1", _seed_like(True), SEED_COUNTS, 3, "`limits` (one pointer) after `store`"),
    WasmtimeLayout("L2", "1.0.0", "8.0.1", _transcoder_era(VMCALLER_CHECKED_ANYFUNC, "anyfunc"),
                   TRANSCODER_COUNTS, 3, "`transcode_libcalls` after the magic; `transcoder_anyfuncs` array"),
    WasmtimeLayout("L3", "9.0.0", "11.0.2", _transcoder_era(VM_FUNC_REF_5, "func_ref"), TRANSCODER_COUNTS, 5,
                   "same order (renamed `*_func_refs`), but a func ref is 5 pointers, not 3"),
    WasmtimeLayout("L4", "12.0.0", "21.0.2", _trampoline_era(VM_FUNC_REF_5, "libcalls"), TRAMPOLINE_COUNTS, 5,
                   "`libcalls`; one `trampoline_func_refs` array replaces the lowering / always-trap / "
                   "transcoder arrays; `resource_destructors` appended"),
    WasmtimeLayout("L5", "22.0.0", "28.0.1", _trampoline_era(VM_FUNC_REF_4, "libcalls"), TRAMPOLINE_COUNTS, 4,
                   "same text as L4, but a func ref is 4 pointers"),
    WasmtimeLayout("L5", "29.0.0", "29.0.1", _trampoline_era(VM_FUNC_REF_4, "builtins"), TRAMPOLINE_COUNTS, 4,
                   "`libcalls` renamed `builtins`"),
    WasmtimeLayout("L6", "30.0.0", "30.0.2", _callback_era("limits"), CALLBACK_COUNTS, 4,
                   "the 2-pointer `store` removed; `callbacks` between reallocs and post_returns"),
    WasmtimeLayout("L6", "31.0.0", "31.0.0", _callback_era("vm_store_context"), CALLBACK_COUNTS, 4,
                   "`limits` renamed `vm_store_context`"),
    WasmtimeLayout("L7", "32.0.0", "33.0.2", _callback_era("vm_store_context", TABLE_L7), TABLE_COUNTS, 4,
                   "`tables` after memories, each entry 2 pointers", methods={"size_of_vmtable": PtrUnits(2)}),
    WasmtimeLayout("L8", "34.0.0", "38.0.4", _callback_era("vm_store_context", TABLE_L8), TABLE_COUNTS, 4,
                   "table entries become 3 pointers", methods={"size_of_vmtable_import": PtrUnits(3)}),
    WasmtimeLayout("L9", "39.0.0", "41.0.4", _callback_era("vm_store_context", TABLE_L9, intrinsics=True),
                   INTRINSIC_COUNTS, 4, "`intrinsic_func_refs` after the trampoline func refs",
                   methods={"size_of_vmtable_import": PtrUnits(3)}),
    WasmtimeLayout("L10", "42.0.0", "46.0.3",
                   _callback_era("vm_store_context", TABLE_L9, True, True, flag_init=FLAG_MAY_LEAVE),
                   INTRINSIC_COUNTS, 4, "`task_may_block` (16 bytes) right after the flags",
                   flag_bits=MAY_LEAVE_ONLY, methods={"size_of_vmtable_import": PtrUnits(3)}),
    WasmtimeLayout("L10", "47.0.0", "47.0.4",
                   _callback_era("vm_store_context", TABLE_L9, True, True, "may_leave", "may_leave", 1),
                   INTRINSIC_COUNTS, 4, "flags renamed `may_leave`", flag_bits=MAY_LEAVE_ONLY,
                   methods={"size_of_vmtable_import": PtrUnits(3)}),
    WasmtimeLayout("L10", "48.0.0", "48.0.0",
                   _callback_era("vm_store_context", TABLE_L9, True, True, "may_leave", "may_leave", 1),
                   INTRINSIC_COUNTS, 4, "`size_of_vmtable_import` helper removed", flag_bits=MAY_LEAVE_ONLY),
)


def supported_ranges():
    """The supported versions as text, for error messages."""
    return ", ".join(["seed"] + [f"{layout.range_text} ({layout.id})" for layout in LAYOUTS[1:]])


_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def wasmtime_layout(version="seed"):
    """The layout of a Wasmtime release: "0.40.1", "v21.0.2", "21" (newest 21.x), or "seed"."""
    if isinstance(version, WasmtimeLayout):
        return version
    text = str(version).strip()
    if text.lower() == "seed":
        return SEED
    m = _VERSION.match(text)
    if not m:
        raise ValueError(f"not a Wasmtime version: {version!r}; supported: {supported_ranges()}")
    parts = [p for p in m.groups() if p is not None]
    candidates = [v for v in ALL_RELEASES if _key(v)[: len(parts)] == tuple(int(p) for p in parts)]
    if not candidates:
        raise ValueError(f"Wasmtime {text} is not a supported release; supported: {supported_ranges()}")
    newest = max(candidates, key=_key)
    return next(layout for layout in LAYOUTS[1:] if _key(layout.first) <= _key(newest) <= _key(layout.last))
