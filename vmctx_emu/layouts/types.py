"""Element types stored in a `VMComponentContext`: their sub-fields, each with a role.

A type is sized the way its release's Rust sizes it: either by `PtrSize`
helpers (`size_of_vmcaller_checked_anyfunc() = 3P`: sub-field offsets and the
size are `PtrUnits` expressions), or, from v48, as a `#[repr(C)]` struct of
`for_each_vm_type!` (`repr_c=True`: C placement rules from the sub-fields'
kinds). Either way the sizes Rust computes in `u8` bound the pointer sizes a
release accepts (`fits_u8`).
"""

from functools import lru_cache

from .record import Record

__all__ = [
    "KIND_WIDTH",
    "ROLES",
    "CODE_ROLES",
    "PtrUnits",
    "PTR",
    "resolve",
    "SubField",
    "ElementType",
    "pointer_type",
    "MAGIC_U32",
    "STORE_FAT_PTR",
    "VMGLOBAL_DEFINITION",
    "VMGLOBAL_I32",
    "VMCALLER_CHECKED_ANYFUNC",
    "VM_FUNC_REF_5",
    "VM_FUNC_REF_4",
    "VM_FUNC_REF_C",
    "VMLOWERING",
    "VMTABLE",
    "VMTABLE_IMPORT",
    "VMTABLE_IMPORT_C",
]

# Bytes of each scalar kind other than "ptr" (pointer-sized).
KIND_WIDTH = {"u32": 4, "i32": 4}

# What a sub-field's value means; the runtime, decoder and scanner act on roles, never on names.
ROLES = {
    "magic": "the VMCOMPONENT_MAGIC u32",
    "flags": "an instance's flag word (i32 of flag bits)",
    "value": "a plain i32 the runtime keeps",
    "header": "a pointer initialize_vmctx writes from the store or engine",
    "func_ptr": "compiled code (caller-checked anyfunc)",
    "native_call": "compiled code, native calling convention",
    "array_call": "compiled code, array calling convention",
    "wasm_call": "compiled code, wasm calling convention",
    "type_index": "a u32 shared type index",
    "vmctx": "this context's own address",
    "callee": "a host function (VMLoweringCallee)",
    "data": "host data for the lowering callee",
    "memory": "a VMMemoryDefinition",
    "func_ref": "a func ref (VMFuncRef / VMCallerCheckedAnyfunc)",
    "table": "a VMTableDefinition",
    "core_vmctx": "a core instance's VMContext",
    "table_index": "a u32 defined-table index",
}
CODE_ROLES = ("func_ptr", "native_call", "array_call", "wasm_call", "callee")


class PtrUnits(Record):
    """`n * P` bytes, P being the pointer size."""

    n: int

    def __str__(self):
        return "ptr" if self.n == 1 else f"{self.n}*ptr"


PTR = PtrUnits(1)


def resolve(spec, ptr):
    """A size/offset/alignment spec (int or `PtrUnits`) in bytes for pointer size `ptr`."""
    return spec.n * int(ptr) if isinstance(spec, PtrUnits) else spec


class SubField(Record):
    """One scalar inside an element.

    `kind` is "ptr" (usize), "u32" or "i32"; `role` (a key of `ROLES`) says
    what the value means. `null` says what a runtime setter accepts there:
    "never" (`NonNull`, a fn pointer), "debug" (a raw pointer a `debug_assert!`
    checks) or "allowed" (`Option`, `*mut u8`). `offset` is a `PtrUnits`
    expression, or None in a `repr_c` type.
    """

    name: str
    kind: str
    role: str
    offset: object = None
    null: str = "never"

    def width(self, ptr):
        return int(ptr) if self.kind == "ptr" else KIND_WIDTH[self.kind]


class ElementType(Record):
    """A Rust type as laid out in the context; bytes not covered by `subfields` are padding.

    `u8_size` is False only where Rust computes the size in `u32` (`cmul(2,
    ptr.size())` for the store fat pointer): every other size is `u8`
    arithmetic that panics past 255. `checked` names the sub-fields the
    runtime's getter asserts are no longer `INVALID_PTR` (debug builds).
    """

    rust_name: str
    c_name: str
    subfields: tuple
    size: object = None
    align: object = None
    repr_c: bool = False
    u8_size: bool = True
    checked: tuple = ()

    def size_for(self, ptr):
        return _placed(self, int(ptr))[0]

    def align_for(self, ptr):
        return _placed(self, int(ptr))[1]

    def offset_of(self, sub, ptr):
        return _placed(self, int(ptr))[2][sub]

    def sub(self, name):
        return next(s for s in self.subfields if s.name == name)

    def fits_u8(self, ptr):
        return not self.u8_size or self.size_for(ptr) <= 0xFF

    def role_sub(self, role):
        """The sub-field with `role`, or None."""
        return next((s for s in self.subfields if s.role == role), None)


@lru_cache(maxsize=None)
def _placed(etype, p):
    """(size, align, {sub: offset}) of `etype` at pointer size `p`."""
    if not etype.repr_c:
        return (resolve(etype.size, p), resolve(etype.align, p),
                {s.name: resolve(s.offset, p) for s in etype.subfields})
    cursor, most, offsets = 0, 1, {}
    for s in etype.subfields:
        a = s.width(p)
        cursor = -(-cursor // a) * a
        offsets[s.name] = cursor
        cursor += a
        most = max(most, a)
    return -(-cursor // most) * most, most, offsets


def pointer_type(rust_name, role, null="never"):
    """A single pointer-sized slot (`*mut T`) whose value has `role`."""
    c_name = "vmctx_" + "".join(c if c.isalnum() else "_" for c in rust_name.lower()).strip("_") + "_slot"
    return ElementType(rust_name, c_name, (SubField("ptr", "ptr", role, 0, null),), PTR, PTR, checked=("ptr",))


MAGIC_U32 = ElementType("u32", "vmctx_u32", (SubField("magic", "u32", "magic", 0),), 4, 4)
# `*mut dyn Store` is a fat pointer: data pointer, then vtable pointer.
STORE_FAT_PTR = ElementType(
    "*mut dyn Store", "vmctx_store_fat_ptr",
    (SubField("data", "ptr", "header", 0), SubField("vtable", "ptr", "header", PTR)),
    PtrUnits(2), PTR, u8_size=False,
)
# The flag word is the i32 in the first 4 bytes; the other 12 bytes stay zero.
VMGLOBAL_DEFINITION = ElementType(
    "VMGlobalDefinition", "vmctx_global_definition", (SubField("flags", "i32", "flags", 0),), 16, 16)
# A `VMGlobalDefinition` holding a plain i32 (v42+ `task_may_block`: 0 or 1), not flag bits.
VMGLOBAL_I32 = ElementType("VMGlobalDefinition", "vmctx_global_i32", (SubField("value", "i32", "value", 0),), 16, 16)
# Seed to v8; on 64-bit the 4 bytes after `type_index` are padding.
VMCALLER_CHECKED_ANYFUNC = ElementType(
    "VMCallerCheckedAnyfunc", "vmctx_caller_checked_anyfunc",
    (SubField("func_ptr", "ptr", "func_ptr", 0), SubField("type_index", "u32", "type_index", PTR),
     SubField("vmctx", "ptr", "vmctx", PtrUnits(2))),
    PtrUnits(3), PTR, checked=("func_ptr", "vmctx"),
)
# v9-v21: five pointer-sized words.
VM_FUNC_REF_5 = ElementType(
    "VMFuncRef", "vmctx_func_ref5",
    (SubField("native_call", "ptr", "native_call", 0), SubField("array_call", "ptr", "array_call", PTR),
     SubField("wasm_call", "ptr", "wasm_call", PtrUnits(2), "allowed"),
     SubField("type_index", "u32", "type_index", PtrUnits(3)), SubField("vmctx", "ptr", "vmctx", PtrUnits(4))),
    PtrUnits(5), PTR, checked=("wasm_call", "vmctx"),
)
# v22-v47: four pointer-sized words.
VM_FUNC_REF_4 = ElementType(
    "VMFuncRef", "vmctx_func_ref4",
    (SubField("array_call", "ptr", "array_call", 0), SubField("wasm_call", "ptr", "wasm_call", PTR, "allowed"),
     SubField("type_index", "u32", "type_index", PtrUnits(2)), SubField("vmctx", "ptr", "vmctx", PtrUnits(3))),
    PtrUnits(4), PTR, checked=("wasm_call", "vmctx"),
)
# From v48 the same fields as a `#[repr(C)]` struct: at P=1 and P=2 it is 12 bytes, not 4P.
VM_FUNC_REF_C = ElementType(
    "VMFuncRef", "vmctx_func_ref_c",
    (SubField("array_call", "ptr", "array_call"), SubField("wasm_call", "ptr", "wasm_call", null="allowed"),
     SubField("type_index", "u32", "type_index"), SubField("vmctx", "ptr", "vmctx")),
    repr_c=True, checked=("wasm_call", "vmctx"),
)
VMLOWERING = ElementType(
    "VMLowering", "vmctx_lowering",
    (SubField("callee", "ptr", "callee", 0), SubField("data", "ptr", "data", PTR, "allowed")),
    PtrUnits(2), PTR, checked=("callee", "data"),
)
# Component tables, v32-v33 (`VMTable`).
VMTABLE = ElementType(
    "VMTable", "vmctx_table",
    (SubField("from", "ptr", "table", 0), SubField("vmctx", "ptr", "core_vmctx", PTR)),
    PtrUnits(2), PTR, checked=("from", "vmctx"),
)
# v34-v47 (`VMTableImport`, `size_of_vmtable_import() = 3P`).
VMTABLE_IMPORT = ElementType(
    "VMTableImport", "vmctx_table_import",
    (SubField("from", "ptr", "table", 0), SubField("vmctx", "ptr", "core_vmctx", PTR),
     SubField("index", "u32", "table_index", PtrUnits(2))),
    PtrUnits(3), PTR, checked=("from", "vmctx"),
)
# From v48 a `#[repr(C)]` struct: 8 bytes at P=1 and P=2, not 3P.
VMTABLE_IMPORT_C = ElementType(
    "VMTableImport", "vmctx_table_import_c",
    (SubField("from", "ptr", "table"), SubField("vmctx", "ptr", "core_vmctx"),
     SubField("index", "u32", "table_index")),
    repr_c=True, checked=("from", "vmctx"),
)
