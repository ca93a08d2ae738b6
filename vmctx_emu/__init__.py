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

# Names whose modules need numpy are imported on first use (PEP 562), so that
# `vmctx-emu --help`, `layout` and `versions` start without loading numpy.
_LAZY = {
    "DumpError": ".dumps.dump",
    "load_dump": ".dumps.dump",
    "InstanceFlags": ".memory.flags",
    "OwnedComponentInstance": ".memory.instance",
    "VMComponentContext": ".memory.instance",
    "VMLowering": ".memory.reader",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
