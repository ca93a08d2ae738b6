"""Pointer width as a value (Wasmtime's `PtrSize` trait), never a global."""

import ctypes

from ..errors import InvalidPtrSizeError

__all__ = [
    "PtrSize",
    "HostPtr",
    "VALID_PTR_SIZES",
    "as_ptr_size",
    "invalid_ptr",
    "size_of_vmcaller_checked_anyfunc",
    "size_of_vmglobal_definition",
    "vmcaller_checked_anyfunc_func_ptr",
    "vmcaller_checked_anyfunc_type_index",
    "vmcaller_checked_anyfunc_vmctx",
]

U8_MAX = 0xFF
# Every PtrSize helper is `u8` arithmetic in Rust; the largest product is
# size_of_vmcaller_checked_anyfunc() = 3 * size, and `align` asserts a power
# of two. Sizes outside this set make the Rust code panic.
VALID_PTR_SIZES = tuple(1 << k for k in range(8) if 3 * (1 << k) <= U8_MAX)

_INVALID_PTR_64 = 0xDEAD_DEAD_BEEF_BEEF


class PtrSize(int):
    """A pointer size in bytes that Wasmtime's `PtrSize` accepts; compares equal to the int."""

    def __new__(cls, size):
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidPtrSizeError(
                f"pointer size must be an int, got {type(size).__name__} {size!r}"
            )
        if size not in VALID_PTR_SIZES:
            raise InvalidPtrSizeError(
                f"pointer size {size} is not supported: Wasmtime's u8 PtrSize arithmetic "
                f"(3 * size must fit a u8, size a power of two) allows only "
                f"{', '.join(map(str, VALID_PTR_SIZES))}"
            )
        return super().__new__(cls, size)

    def __repr__(self):
        return f"PtrSize({int(self)})"

    def size(self):
        return int(self)

    def size_of_vmcaller_checked_anyfunc(self):
        return 3 * int(self)

    def size_of_vmglobal_definition(self):
        return 16

    def vmcaller_checked_anyfunc_func_ptr(self):
        return 0

    def vmcaller_checked_anyfunc_type_index(self):
        return int(self)

    def vmcaller_checked_anyfunc_vmctx(self):
        return 2 * int(self)


HostPtr = PtrSize(ctypes.sizeof(ctypes.c_void_p))


def as_ptr_size(ptr):
    """`HostPtr`, a `PtrSize` or a plain int, as a validated `PtrSize`."""
    return ptr if isinstance(ptr, PtrSize) else PtrSize(ptr)


def invalid_ptr(ptr_size):
    """`INVALID_PTR` (0xdeaddeadbeefbeef as usize) truncated to `ptr_size` bytes."""
    size = as_ptr_size(ptr_size)
    return _INVALID_PTR_64 & ((1 << (8 * min(size, 8))) - 1)


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
