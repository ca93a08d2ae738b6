"""vmctx-emu: Wasmtime's `VMComponentContext` memory, emulated byte for byte.

Every release's layout is declared once (`vmctx_emu.layouts.releases`);
offsets, memory, setters, decoding and everything else derive from it.
"""

from .constants import (
    FLAG_MAY_ENTER,
    FLAG_MAY_LEAVE,
    FLAG_NEEDS_POST_RETURN,
    VMCOMPONENT_MAGIC,
    VMCONTEXT_MAGIC,
)
from .dumps.dump import DumpError, load_dump
from .errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ClosedError,
    ComponentIndexError,
    ComponentValueError,
    InvalidPtrSizeError,
    LayoutError,
    LayoutOverflowError,
    UnknownReleaseError,
    VMContextError,
    VMCtxEmuError,
)
from .memory.flags import InstanceFlags
from .memory.instance import OwnedComponentInstance, VMComponentContext
from .memory.reader import VMLowering
from .layouts.releases import Component, VMComponentOffsets, WasmtimeLayout, wasmtime_layout
from .layouts.fields import Region
from .layouts.ptr import (
    HostPtr,
    PtrSize,
    invalid_ptr,
    size_of_vmcaller_checked_anyfunc,
    size_of_vmglobal_definition,
    vmcaller_checked_anyfunc_func_ptr,
    vmcaller_checked_anyfunc_type_index,
    vmcaller_checked_anyfunc_vmctx,
)

__all__ = [
    "ArgumentTypeError",
    "ArgumentValueError",
    "ClosedError",
    "LayoutError",
    "UnknownReleaseError",
    "Component",
    "DumpError",
    "ComponentIndexError",
    "ComponentValueError",
    "FLAG_MAY_ENTER",
    "FLAG_MAY_LEAVE",
    "FLAG_NEEDS_POST_RETURN",
    "HostPtr",
    "InstanceFlags",
    "InvalidPtrSizeError",
    "LayoutOverflowError",
    "OwnedComponentInstance",
    "PtrSize",
    "Region",
    "VMCOMPONENT_MAGIC",
    "VMCONTEXT_MAGIC",
    "VMComponentOffsets",
    "VMComponentContext",
    "VMContextError",
    "VMLowering",
    "WasmtimeLayout",
    "VMCtxEmuError",
    "invalid_ptr",
    "load_dump",
    "size_of_vmcaller_checked_anyfunc",
    "size_of_vmglobal_definition",
    "vmcaller_checked_anyfunc_func_ptr",
    "vmcaller_checked_anyfunc_type_index",
    "vmcaller_checked_anyfunc_vmctx",
    "wasmtime_layout",
]
