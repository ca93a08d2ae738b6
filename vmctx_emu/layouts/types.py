"""Element types stored in a `VMComponentContext`, with their sub-fields (runtime.md, "Element types").

Sizes, alignments and sub-field offsets are `PtrUnits` expressions so the same
declaration serves every pointer width and can be printed symbolically.
"""

from dataclasses import dataclass

__all__ = [
    "pointer_type",
    "VM_FUNC_REF_5",
    "VM_FUNC_REF_4",
    "VMTABLE",
    "VMTABLE_IMPORT",
    "VMGLOBAL_I32",
    "PtrUnits",
    "PTR",
    "resolve",
    "SubField",
    "ElementType",
    "MAGIC_U32",
    "STORE_FAT_PTR",
    "VMGLOBAL_DEFINITION",
    "VMCALLER_CHECKED_ANYFUNC",
    "VMLOWERING",
    "VMMEMORY_DEFINITION_PTR",
    "VMCALLER_CHECKED_ANYFUNC_PTR",
]


@dataclass(frozen=True)
class PtrUnits:
    """`n * P` bytes, P being the pointer size."""

    n: int

    def __str__(self):
        return "ptr" if self.n == 1 else f"{self.n}*ptr"


PTR = PtrUnits(1)


def resolve(spec, ptr):
    """A size/offset/alignment spec (int or `PtrUnits`) in bytes for pointer size `ptr`."""
    return spec.n * int(ptr) if isinstance(spec, PtrUnits) else spec


@dataclass(frozen=True)
class SubField:
    """One scalar inside an element: `kind` is "ptr" (usize), "u32" or "i32".

    `role` tells the decoder what the value means beyond its kind: "magic",
    "flags" (a flag word) or "own_vmctx" (should be the context's address).
    """

    name: str
    offset: object
    kind: str
    role: str = None

    def width(self, ptr):
        return int(ptr) if self.kind == "ptr" else 4


@dataclass(frozen=True)
class ElementType:
    """A Rust type as laid out in the context; bytes not covered by `subfields` are padding."""

    rust_name: str
    c_name: str
    size: object
    align: object
    subfields: tuple

    def size_for(self, ptr):
        return resolve(self.size, ptr)

    def align_for(self, ptr):
        return resolve(self.align, ptr)


MAGIC_U32 = ElementType("u32", "vmctx_u32", 4, 4, (SubField("magic", 0, "u32", "magic"),))
# `*mut dyn Store` is a fat pointer: data pointer, then vtable pointer.
STORE_FAT_PTR = ElementType(
    "*mut dyn Store",
    "vmctx_store_fat_ptr",
    PtrUnits(2),
    PTR,
    (SubField("data", 0, "ptr"), SubField("vtable", PTR, "ptr")),
)
# The flag word is the i32 in the first 4 bytes; the other 12 bytes stay zero.
VMGLOBAL_DEFINITION = ElementType("VMGlobalDefinition", "vmctx_global_definition", 16, 16, (SubField("flags", 0, "i32", "flags"),))
# On 64-bit the 4 bytes after `type_index` are padding.
VMCALLER_CHECKED_ANYFUNC = ElementType(
    "VMCallerCheckedAnyfunc",
    "vmctx_caller_checked_anyfunc",
    PtrUnits(3),
    PTR,
    (
        SubField("func_ptr", 0, "ptr"),
        SubField("type_index", PTR, "u32"),
        SubField("vmctx", PtrUnits(2), "ptr", "own_vmctx"),
    ),
)
VMLOWERING = ElementType(
    "VMLowering",
    "vmctx_lowering",
    PtrUnits(2),
    PTR,
    (SubField("callee", 0, "ptr"), SubField("data", PTR, "ptr")),
)
VMMEMORY_DEFINITION_PTR = ElementType("*mut VMMemoryDefinition", "vmctx_memory_definition_ptr", PTR, PTR, (SubField("ptr", 0, "ptr"),))
VMCALLER_CHECKED_ANYFUNC_PTR = ElementType(
    "*mut VMCallerCheckedAnyfunc", "vmctx_anyfunc_ptr", PTR, PTR, (SubField("ptr", 0, "ptr"),)
)


def pointer_type(rust_name, c_name):
    """A single pointer-sized slot (`*mut T`)."""
    return ElementType(rust_name, c_name, PTR, PTR, (SubField("ptr", 0, "ptr"),))


# `VMFuncRef` v9-v21: native_call, array_call, wasm_call, type_index, vmctx (5 pointers).
VM_FUNC_REF_5 = ElementType(
    "VMFuncRef",
    "vmctx_func_ref5",
    PtrUnits(5),
    PTR,
    (
        SubField("native_call", 0, "ptr"),
        SubField("array_call", PTR, "ptr"),
        SubField("wasm_call", PtrUnits(2), "ptr"),
        SubField("type_index", PtrUnits(3), "u32"),
        SubField("vmctx", PtrUnits(4), "ptr", "own_vmctx"),
    ),
)
# `VMFuncRef` from v22: array_call, wasm_call, type_index, vmctx (4 pointers).
VM_FUNC_REF_4 = ElementType(
    "VMFuncRef",
    "vmctx_func_ref4",
    PtrUnits(4),
    PTR,
    (
        SubField("array_call", 0, "ptr"),
        SubField("wasm_call", PTR, "ptr"),
        SubField("type_index", PtrUnits(2), "u32"),
        SubField("vmctx", PtrUnits(3), "ptr", "own_vmctx"),
    ),
)
# Component tables, v32-v33 (`VMTable`) and from v34 (`VMTableImport`).
VMTABLE = ElementType(
    "VMTable", "vmctx_table", PtrUnits(2), PTR, (SubField("from", 0, "ptr"), SubField("vmctx", PTR, "ptr"))
)
VMTABLE_IMPORT = ElementType(
    "VMTableImport",
    "vmctx_table_import",
    PtrUnits(3),
    PTR,
    (SubField("from", 0, "ptr"), SubField("vmctx", PTR, "ptr"), SubField("index", PtrUnits(2), "u32")),
)

# A `VMGlobalDefinition` holding a plain i32 (v42+ `task_may_block`: 0 or 1), not flag bits.
VMGLOBAL_I32 = ElementType("VMGlobalDefinition", "vmctx_global_i32", 16, 16, (SubField("value", 0, "i32"),))
