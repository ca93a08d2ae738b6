"""Pointer width as a value (Wasmtime's `PtrSize` trait), never a global.

`PtrSize::size()` is a `u8` and `align` asserts a power of two, so a pointer
size is a power of two up to 128; which of those a release accepts follows
from the `u8` sizes of its element types (`WasmtimeLayout.valid_ptr_sizes`).
The seed's `PtrSize` helpers are read off the seed's element types.
"""

import struct

from ..constants import INVALID_PTR_64
from ..errors import InvalidPtrSizeError
from .types import VMCALLER_CHECKED_ANYFUNC, VMGLOBAL_DEFINITION

__all__ = [
    "PtrSize",
    "HostPtr",
    "POINTER_SIZES",
    "EMULATED_PTR_SIZES",
    "as_ptr_size",
    "invalid_ptr",
    "size_of_vmcaller_checked_anyfunc",
    "size_of_vmglobal_definition",
    "vmcaller_checked_anyfunc_func_ptr",
    "vmcaller_checked_anyfunc_type_index",
    "vmcaller_checked_anyfunc_vmctx",
]

POINTER_SIZES = tuple(1 << k for k in range(8))
# Memory is emulated only where every sub-field fits its element and has a
# numpy integer type: a 1- or 2-byte pointer would overlap `type_index`
# with `vmctx`, and numpy has no 16/32/64-byte integers. Other sizes are offsets-only.
EMULATED_PTR_SIZES = (4, 8)


class PtrSize(int):
    """A pointer size in bytes that Wasmtime's `PtrSize` can hold; compares equal to the int."""

    def __new__(cls, size):
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidPtrSizeError(
                f"pointer size must be an int, got {type(size).__name__} {size!r}"
            )
        if size not in POINTER_SIZES:
            raise InvalidPtrSizeError(
                f"pointer size {size} is not supported: Wasmtime's PtrSize is a u8 power of two "
                f"({', '.join(map(str, POINTER_SIZES))}), and each release narrows that further"
            )
        return super().__new__(cls, size)

    def __repr__(self):
        return f"PtrSize({int(self)})"

    def size(self):
        return int(self)

    def size_of_vmcaller_checked_anyfunc(self):
        return VMCALLER_CHECKED_ANYFUNC.size_for(self)

    def size_of_vmglobal_definition(self):
        return VMGLOBAL_DEFINITION.size_for(self)

    def vmcaller_checked_anyfunc_func_ptr(self):
        return VMCALLER_CHECKED_ANYFUNC.offset_of("func_ptr", self)

    def vmcaller_checked_anyfunc_type_index(self):
        return VMCALLER_CHECKED_ANYFUNC.offset_of("type_index", self)

    def vmcaller_checked_anyfunc_vmctx(self):
        return VMCALLER_CHECKED_ANYFUNC.offset_of("vmctx", self)


HostPtr = PtrSize(struct.calcsize("P"))  # the host's pointer size, without importing ctypes


def as_ptr_size(ptr):
    """`HostPtr`, a `PtrSize` or a plain int, as a validated `PtrSize`."""
    return ptr if isinstance(ptr, PtrSize) else PtrSize(ptr)


def invalid_ptr(ptr_size):
    """`INVALID_PTR` (0xdeaddeadbeefbeef as usize) truncated to `ptr_size` bytes."""
    size = as_ptr_size(ptr_size)
    return INVALID_PTR_64 & ((1 << (8 * min(size, 8))) - 1)


def size_of_vmcaller_checked_anyfunc(ptr):
    return as_ptr_size(ptr).size_of_vmcaller_checked_anyfunc()


def size_of_vmglobal_definition(ptr):
    return as_ptr_size(ptr).size_of_vmglobal_definition()


def vmcaller_checked_anyfunc_func_ptr(ptr):
    return as_ptr_size(ptr).vmcaller_checked_anyfunc_func_ptr()


def vmcaller_checked_anyfunc_type_index(ptr):
    return as_ptr_size(ptr).vmcaller_checked_anyfunc_type_index()


def vmcaller_checked_anyfunc_vmctx(ptr):
    return as_ptr_size(ptr).vmcaller_checked_anyfunc_vmctx()
