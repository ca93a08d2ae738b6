"""C declarations generated from the layout declaration, for the compiler to check (host pointer size).

The C side never states an offset: it declares the fields in order with their
natural types and lets the compiler place them, so `offsetof` is an independent
witness of the Python arithmetic.
"""

from ..errors import ArgumentValueError
from .fields import Field
from .ptr import HostPtr

__all__ = ["C_SCALAR", "element_typedef", "element_typedefs", "context_struct", "context_fields"]

C_SCALAR = {"ptr": "uintptr_t", "u32": "uint32_t", "i32": "int32_t"}


def element_typedef(etype):
    """`typedef struct {...} <c_name>;` with the element's alignment; padding is left to C."""
    members = "".join(f"    {C_SCALAR[s.kind]} {s.name};\n" for s in etype.subfields)
    align = etype.align_for(HostPtr)
    return f"typedef struct __attribute__((aligned({align}))) {{\n{members}}} {etype.c_name};\n"


def element_typedefs(fields):
    seen = {}
    for f in fields:
        if isinstance(f, Field):
            seen.setdefault(f.elem_type.c_name, f.elem_type)
    return list(seen.values())


def context_fields(fields):
    return [f for f in fields if isinstance(f, Field)]


def context_struct(offsets, struct_name, end_marker="end_marker"):
    """A C struct with fixed-size arrays for this exact shape, ending in a flexible `end_marker`."""
    if offsets.pointer_size() != HostPtr:
        raise ArgumentValueError(
            f"a C mirror needs the host pointer size {int(HostPtr)}, got {offsets.pointer_size()}"
        )
    lines = [f"struct {struct_name} {{"]
    for f in context_fields(offsets.FIELDS):
        region = offsets.region(f.name)
        dim = "" if f.count is None else f"[{region.count}]"
        lines.append(f"    {f.elem_type.c_name} {f.name}{dim};")
    lines.append(f"    unsigned char {end_marker}[];")
    lines.append("};")
    return "\n".join(lines) + "\n"
