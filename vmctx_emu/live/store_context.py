"""The store context a live component context's header points at, read from the target and decoded.

`store_context_of(source, ctx)` follows the context's `limits` /
`vm_store_context` / `store_context` pointer (its value in the bytes the scan
read), reads the struct its release declares and decodes it. Read-only, as
every reader here.
"""

from ..dumps.store_context import decode_store_context
from ..layouts.store_context import store_context_layout
from .shape import offsets_for

__all__ = ["STRUCT_POINTERS", "store_context_pointer", "store_context_of"]

# The header fields that point at it, by their Rust pointee.
STRUCT_POINTERS = ("*mut VMRuntimeLimits", "*mut VMStoreContext")
PTR, ORDER = 8, "little"  # the scanner's targets: 64-bit little-endian (x86-64, aarch64)


def store_context_pointer(ctx):
    """(header field name, its value) of a `LiveContext` with bytes; None without bytes or such a field."""
    if ctx.data is None:
        return None
    field = next((f for f in ctx.layout.declared_fields() if f.elem_type.rust_name in STRUCT_POINTERS), None)
    if field is None:
        return None
    at = offsets_for(ctx.layout, ctx.counts).region(field.name).offset
    return field.name, int.from_bytes(ctx.data[at : at + PTR], ORDER)


def store_context_of(source, ctx):
    """The `DecodedStoreContext` `ctx`'s header points at, read from `source` now; None where `ctx` has no
    bytes or its release no such pointer. UnreadableMemoryError where the pointer leads nowhere readable."""
    found = store_context_pointer(ctx)
    if found is None:
        return None
    _, address = found
    layout = store_context_layout(ctx.release or ctx.wasmtime)
    data = source.read(address, layout.size(PTR))
    return decode_store_context(data, ctx.release or ctx.wasmtime, ptr=PTR, byte_order=ORDER, address=address)
