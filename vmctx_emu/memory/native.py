"""The compiled `native/` code (cffi), and the glue that hands it offsets computed in Python."""

from .._native import ffi, lib

__all__ = ["ffi", "lib", "c_layout", "c_alloc_init"]


def c_layout(offsets):
    """A `vmctx_c_layout` filled by name: region offsets, counts, and `size`."""
    layout = ffi.new("vmctx_c_layout *")
    regions = {r.name: r.offset for r in offsets.regions()}
    for name, _ in ffi.typeof("vmctx_c_layout").fields:
        if name == "size":
            value = offsets.size_of_vmctx()
        elif name in regions:
            value = regions[name]
        else:
            value = getattr(offsets, name)
        setattr(layout, name, value)
    return layout


def c_alloc_init(offsets, store=(0, 0), debug_assertions=True):
    """Allocate and initialize with the plain C initializer; freed when the result is collected."""
    layout = c_layout(offsets)
    ptr = lib.vmctx_c_alloc_init(layout, store[0], store[1], int(debug_assertions))
    if ptr == ffi.NULL:
        raise MemoryError(f"vmctx_c_alloc_init failed for {offsets.size_of_vmctx()} bytes")
    return ffi.gc(ptr, lib.vmctx_c_free, size=offsets.size_of_vmctx())
