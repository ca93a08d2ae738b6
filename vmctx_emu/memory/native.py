"""The compiled `native/` code (cffi), and the glue that hands it offsets and fills computed in Python."""

import struct
import sys

from .._native import ffi, lib
from ..checks import check_byte_order, check_int, check_u32
from ..errors import ArgumentTypeError, ArgumentValueError
from ..layouts.ptr import HostPtr, as_ptr_size
from .initializer import Fill, check_offsets, fills_for

__all__ = ["ffi", "lib", "c_alloc_fills", "c_alloc_init", "c_fill_argv", "c_fill_array", "c_initializer_argv", "c_setter",
           "run_setter"]

_U32 = 1 << 32
_U64 = 1 << 64

# Why the C initializer refused, by its VMCTX_INIT_* code.
_C_ERRORS = {
    lib.VMCTX_INIT_BAD_PTR_SIZE: "pointer size",
    lib.VMCTX_INIT_NULL_FILLS: "fills",
    lib.VMCTX_INIT_BAD_WIDTH: "width",
    lib.VMCTX_INIT_OUT_OF_BOUNDS: "bounds",
    lib.VMCTX_INIT_BAD_VALUE: "value",
}


def _word(i, fill, name, value, limit):
    return check_int(f"fill {i} ({fill.field}.{fill.sub}): {name}", value, 0, limit)


def _c_value(i, fill):
    """The value as C's u64; a negative one (an i32 flag word) in two's complement of its width."""
    value = fill.value
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(fill.width, int) \
            and 0 < fill.width <= 8 and -(1 << (8 * fill.width - 1)) <= value < 0:
        value += 1 << (8 * fill.width)
    return _word(i, fill, "value", value, _U64)


def _fill_list(fills):
    try:
        return list(fills)
    except TypeError:
        raise ArgumentTypeError(f"fills must be an iterable of Fill, got {type(fills).__name__} {fills!r}") from None


def c_fill_array(fills):
    """`fills` as a `vmctx_c_fill[]`, each number checked against its C type (the C checks the rest)."""
    array = ffi.new("vmctx_c_fill[]", len(fills))
    for i, fill in enumerate(fills):
        if not isinstance(fill, Fill):
            raise ArgumentTypeError(f"fill {i} must be a Fill, got {type(fill).__name__}")
        c = array[i]
        c.offset = _word(i, fill, "offset", fill.offset, _U32)
        c.count = _word(i, fill, "count", fill.count, _U32)
        c.stride = _word(i, fill, "stride", fill.stride, _U32)
        c.width = _word(i, fill, "width", fill.width, _U32)
        c.value = _c_value(i, fill)
    return array


def _refusal(code, index, fills, size, ptr_size):
    """The C initializer's refusal as the package's error: what, its value, and the bound it broke."""
    what = _C_ERRORS.get(code)
    if what == "pointer size":
        return ArgumentValueError(f"ptr_size {ptr_size} is not the host pointer size {lib.vmctx_host_pointer_size()}")
    if what == "fills":
        return ArgumentValueError("fills is NULL with a non-zero count")
    if what is None or not 0 <= index < len(fills):
        return ArgumentValueError(f"vmctx_c_alloc_init refused with unknown code {code} (fill {index})")
    f = fills[index]
    where = f"fill {index} ({f.field}.{f.sub})"
    if what == "width":
        return ArgumentValueError(f"{where}: width {f.width} is neither 4 nor the host pointer size "
                                  f"{lib.vmctx_host_pointer_size()}")
    if what == "value":
        return ArgumentValueError(f"{where}: value {f.value:#x} does not fit its width of {f.width} bytes "
                                  f"(max {(1 << (8 * f.width)) - 1:#x})")
    return ArgumentValueError(f"{where}: offset {f.offset} + (count {f.count} - 1) * stride {f.stride} + "
                              f"width {f.width} = {f.end} exceeds the context's size {size}")


def c_alloc_fills(size, fills, ptr_size=HostPtr):
    """Allocate `size` zeroed bytes with C and apply `fills` there; freed when the result is collected.

    The C checks every fill before writing; a refusal becomes `ArgumentValueError`
    naming the fill, its value and the bound, so no bad plan reaches memory.
    """
    check_u32("size", size, type_error=ArgumentTypeError, value_error=ArgumentValueError)
    ptr_size = as_ptr_size(ptr_size)
    fills = _fill_list(fills)
    c_fills = c_fill_array(fills)
    error = ffi.new("int *")
    bad = ffi.new("size_t *")
    ptr = lib.vmctx_c_alloc_init(size, int(ptr_size), c_fills if fills else ffi.NULL, len(fills), error, bad)
    if ptr == ffi.NULL:
        if error[0] == lib.VMCTX_INIT_NO_MEMORY:
            raise MemoryError(f"vmctx_c_alloc_init could not allocate {size} bytes")
        raise _refusal(error[0], bad[0], fills, size, int(ptr_size))
    return ffi.gc(ptr, lib.vmctx_c_free, size=size)


def _host_plan(offsets, store, header, debug_assertions, byte_order):
    """The fills for `offsets`, refusing targets the host's C cannot write."""
    check_offsets(offsets)
    if offsets.ptr != HostPtr:
        raise ArgumentValueError(f"offsets have pointer size {int(offsets.ptr)}, but the C initializer "
                                 f"stores host pointers of {int(HostPtr)} bytes (use OwnedComponentInstance "
                                 "to emulate that target)")
    check_byte_order(byte_order)
    if byte_order != sys.byteorder:
        raise ArgumentValueError(f"byte_order {byte_order!r} is not the host's {sys.byteorder!r}: the C "
                                 "initializer stores host-order words (use OwnedComponentInstance to emulate it)")
    return fills_for(offsets, store, header=header, debug_assertions=debug_assertions)


def c_alloc_init(offsets, store=None, *, header=None, debug_assertions=True, byte_order=sys.byteorder):
    """A context for `offsets` (any release's `VMComponentOffsets`) built by the C initializer.

    The same bytes as `OwnedComponentInstance` with that release, counts,
    `store`/`header` and `debug_assertions`; only the seed defaults its store
    to null. Host pointer size and byte order only. Freed when collected.
    """
    fills = _host_plan(offsets, store, header, debug_assertions, byte_order)
    return c_alloc_fills(offsets.size_of_vmctx(), fills)


def c_fill_argv(fills):
    """Each fill as an `offset:count:stride:width:value` argv item (value in hex), as gdb_target reads them."""
    fills = _fill_list(fills)
    c_fill_array(fills)  # the checks c_alloc_fills makes, so gdb_target gets nothing C would refuse
    return [f"{f.offset}:{f.count}:{f.stride}:{f.width}:{_c_value(i, f):#x}" for i, f in enumerate(fills)]


def c_initializer_argv(offsets, store=None, *, header=None, debug_assertions=True):
    """`size ptr_size fill...` for `native/gdb_target.c`: `c_alloc_init`'s plan on a command line."""
    fills = _host_plan(offsets, store, header, debug_assertions, sys.byteorder)
    return [str(offsets.size_of_vmctx()), str(int(offsets.ptr)), *c_fill_argv(fills)]


# -- the short path of a runtime setter -----------------------------------------------

run_setter = lib.vmctx_setter_run


def c_setter(address, size, count, values, asserts, own, invalid, vmctx):
    """A `vmctx_setter` for the `size` bytes at `address`, each word an (offset, stride, width, nonnull)
    tuple, and the `struct.Struct` that packs its values for `run_setter`. Returns (setter, packer,
    what keeps the words alive); `vmctx_setter_check` bounds every word of every element by `size`
    first, so running it never writes outside the context."""
    words = values + asserts + own
    array = ffi.new("vmctx_word[]", [dict(zip(("offset", "stride", "width", "nonnull"), w)) for w in words])
    setter = ffi.new("vmctx_setter *", {"memory": ffi.cast("void *", address), "size": size, "count": count,
                                        "nvalues": len(values), "nasserts": len(asserts), "nown": len(own),
                                        "words": array, "invalid": invalid, "address": vmctx})
    if len(values) > 8 or lib.vmctx_setter_check(setter):
        raise ArgumentValueError(f"a setter's words leave the context's {size} bytes: {words}")
    return setter, struct.Struct("=" + "Q" * len(values)), array
