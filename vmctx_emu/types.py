"""Element types stored in a `VMComponentContext`, with their sub-fields (runtime.md, "Element types").

Sizes, alignments and sub-field offsets are `PtrUnits` expressions so the same
declaration serves every pointer width and can be printed symbolically.
"""

from dataclasses import dataclass

__all__ = [
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
