"""The read side shared by live instances and loaded dumps: getters, flags, numpy views, magic check.

Everything here reads the context's own bytes at computed offsets; nothing
follows a pointer found in them.
"""

import struct
import sys
from collections import namedtuple

from ..constants import VMCOMPONENT_MAGIC
from ..errors import InvalidPtrSizeError, VMContextError
from .flags import InstanceFlags
from ..layouts.fields import Field
from .magic import magic_mismatch_message
from ..layouts.ptr import HostPtr, as_ptr_size, invalid_ptr
from ..layouts.types import VMGLOBAL_DEFINITION
from .views import BYTE_ORDER_CHAR, EMULATED_PTR_SIZES, region_view

__all__ = ["ContextReader", "VMLowering", "check_byte_order"]

VMLowering = namedtuple("VMLowering", "callee data")
VMLowering.__doc__ = "A lowering record: host function pointer `callee`, host data pointer `data`."


def check_byte_order(byte_order):
    if byte_order not in BYTE_ORDER_CHAR:
        raise ValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
    return byte_order


class ContextReader:
    """Getters with the Rust names over `_raw` (a 'B' memoryview), for one target layout."""

    _raw = None
    vmctx = None

    def _set_target(self, component, ptr, byte_order, debug_assertions, wasmtime=None):
        from collections.abc import Mapping

        from ..layouts.releases import wasmtime_layout

        self.wasmtime = "seed" if wasmtime is None else str(wasmtime)
        self.layout = wasmtime_layout(self.wasmtime)
        if isinstance(component, Mapping):
            component = self.layout.component(**component)
        ptr = as_ptr_size(ptr)
        if ptr not in EMULATED_PTR_SIZES:
            raise InvalidPtrSizeError(
                f"memory can be emulated for pointer sizes {EMULATED_PTR_SIZES} only, got {int(ptr)}: "
                f"other sizes are offsets-only (use VMComponentOffsets)"
            )
        self.ptr = ptr
        self.byte_order = check_byte_order(byte_order)
        self.debug_assertions = bool(debug_assertions)
        self.offsets = self.layout.offsets_class(ptr, component)
        self._flags_field = next(f for f, _ in self._fields() if f.count == "num_runtime_component_instances"
                                 and f.elem_type is VMGLOBAL_DEFINITION)
        self.is_host_layout = ptr == HostPtr and byte_order == sys.byteorder
        order = BYTE_ORDER_CHAR[byte_order]
        self._ptr_word = struct.Struct(order + ("Q" if ptr == 8 else "I"))
        self._u32 = struct.Struct(order + "I")
        self._invalid = invalid_ptr(ptr)

    def _check_ptr(self, what, value):
        bits = 8 * int(self.ptr)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise ValueError(
                f"{what} must be an int in [0, 2**{bits}) for pointer size {int(self.ptr)}, got {value!r}"
            )
        return value

    def _fields(self):
        for field in self.offsets.FIELDS:
            if isinstance(field, Field):
                yield field, self.offsets.region(field.name)

    def _live(self):
        raw = self._raw
        if raw is None:
            raise ValueError(f"this {type(self).__name__} is closed")
        return raw

    @property
    def closed(self):
        return self._raw is None

    def layout_parameters(self):
        """Everything needed to read these bytes again, as plain JSON-ready data (pointers as hex)."""
        return {
            "layout": self.layout.id,
            "wasmtime": self.wasmtime,
            "ptr_size": int(self.ptr),
            "byte_order": self.byte_order,
            "counts": self.offsets.component.counts(),
            "size_of_vmctx": self.offsets.size_of_vmctx(),
            "address": None if self.vmctx is None else f"{self.vmctx:#x}",
            "debug_assertions": self.debug_assertions,
        }

    # -- raw access -----------------------------------------------------

    @property
    def memory(self):
        """A zero-copy memoryview of exactly `size_of_vmctx()` bytes."""
        return self._live()

    def to_bytes(self):
        return bytes(self._live())

    def view(self, name):
        """A zero-copy numpy view of region `name` (as in `offsets.regions()`)."""
        region = self.offsets.region(name)
        field = next(f for f, r in self._fields() if r.name == name)
        return region_view(self._live(), region, field.elem_type, self.ptr, self.byte_order)

    def check_magic(self):
        """Raise `VMContextError` unless the u32 at offset 0 is `VMCOMPONENT_MAGIC`."""
        raw = self._live()[:4]
        if self._u32.unpack_from(raw)[0] != VMCOMPONENT_MAGIC:
            raise VMContextError(magic_mismatch_message(self.vmctx, raw, self.byte_order, self.ptr))

    def _load(self, offset):
        return self._ptr_word.unpack_from(self._live(), offset)[0]

    def _check_set(self, accessor, index, offset, what="slot"):
        """Debug builds: a getter's slot must no longer hold INVALID_PTR."""
        value = self._load(offset)
        if self.debug_assertions and value == self._invalid:
            raise VMContextError(
                f"{accessor}({index}): {what} at offset {offset} read before it was set "
                f"(still INVALID_PTR {value:#x})"
            )
        return value

    # -- getters --------------------------------------------------------

    def _require(self, accessor):
        """The offsets accessor `accessor`, or a `VMContextError` if this release has none."""
        method = getattr(self.offsets, accessor, None)
        if method is None:
            raise VMContextError(f"{accessor}() does not exist in the {self.layout.id} layout "
                                 f"({self.layout.range_text})")
        return method

    def store(self):
        """The store fat pointer as (data, vtable); a null store fails like Rust's `assert!`."""
        offset = self._require("store")()
        data, vtable = self._load(offset), self._load(offset + int(self.ptr))
        if data == 0:
            raise VMContextError(f"store(): the store pointer at offset {offset} is null")
        return (data, vtable)

    _flags_class = InstanceFlags

    def instance_flags(self, index):
        """The flag global of component instance `index` (`may_leave` from v47)."""
        offset = getattr(self.offsets, self._flags_field.element)(index)
        return self._flags_class(self, offset, index, self.byte_order)

    def runtime_memory(self, index):
        return self._check_set("runtime_memory", index, self.offsets.runtime_memory(index))

    def runtime_realloc(self, index):
        return self._check_set("runtime_realloc", index, self.offsets.runtime_realloc(index))

    def runtime_post_return(self, index):
        return self._check_set("runtime_post_return", index, self.offsets.runtime_post_return(index))

    def lowering(self, index):
        callee = self._check_set("lowering", index, self.offsets.lowering_callee(index), "callee")
        data = self._check_set("lowering", index, self.offsets.lowering_data(index), "data")
        return VMLowering(callee, data)

    def _anyfunc_address(self, accessor, index, offset):
        self._check_set(accessor, index, offset, "func_ptr")
        self._check_set(accessor, index, offset + self.ptr.vmcaller_checked_anyfunc_vmctx(), "vmctx")
        if self.vmctx is None:
            raise VMContextError(f"{accessor}({index}): the context's address is unknown")
        return self.vmctx + offset

    def lowering_anyfunc(self, index):
        """Address of the lowering's `VMCallerCheckedAnyfunc` slot."""
        return self._anyfunc_address("lowering_anyfunc", index, self._require("lowering_anyfunc")(index))

    def always_trap_anyfunc(self, index):
        """Address of the always-trap function's `VMCallerCheckedAnyfunc` slot."""
        return self._anyfunc_address(
            "always_trap_anyfunc", index, self._require("always_trap_anyfunc")(index)
        )
