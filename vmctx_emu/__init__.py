"""vmctx-emu: Wasmtime's `VMComponentContext` memory, emulated byte for byte.

The layout is declared once (`vmctx_emu.layout.SEED_FIELDS`); offsets,
regions and everything built on them are derived from that declaration.
"""

from .component import Component
from .constants import (
    FLAG_MAY_ENTER,
    FLAG_MAY_LEAVE,
    FLAG_NEEDS_POST_RETURN,
    VMCOMPONENT_MAGIC,
    VMCONTEXT_MAGIC,
)
from .dump import DumpError, load_dump
from .errors import (
    ComponentIndexError,
    ComponentValueError,
    InvalidPtrSizeError,
    LayoutOverflowError,
    VMContextError,
    VMCtxEmuError,
)
from .flags import InstanceFlags
from .instance import OwnedComponentInstance, VMComponentContext
from .reader import VMLowering
from .wasmtime_layouts import WasmtimeLayout, wasmtime_layout
from .layout import Region
from .offsets import VMComponentOffsets
from .ptr import (
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
