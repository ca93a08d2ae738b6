"""vmctx-emu: Wasmtime's `VMComponentContext` memory, emulated byte for byte.

Every release's layout is declared once (`vmctx_emu.layouts.releases`);
offsets, memory, setters, decoding and everything else derive from it.
"""

__version__ = "0.1.0"  # setup.cfg reads it: the one place the version is written

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
    DumpError,
    InvalidPtrSizeError,
    LayoutError,
    LayoutOverflowError,
    UnknownReleaseError,
    VMContextError,
    VMCtxEmuError,
)

from .lazy import lazy_names
from .memory import register_dump_writer


def _write_dump(ctx, path):
    """`OwnedComponentInstance.dump`: the dumps layer's writer, imported when a dump is first written."""
    from .dumps.dump import write_dump

    return write_dump(ctx, path)


# The memory layer knows no dump format; the package's top level, above every layer, plugs one in.
register_dump_writer(_write_dump)

# Everything else is imported on first use (PEP 562), so that `import vmctx_emu`
# (and so every CLI command) does not pay for numpy and the memory emulation
# unless it needs them.
_LAZY = {
    "load_dump": "dumps.dump",
    "InstanceFlags": "memory.flags",
    "OwnedComponentInstance": "memory.instance",
    "VMComponentContext": "memory.instance",
    "VMLowering": "memory.reader",
    "Component": "layouts.releases",
    "VMComponentOffsets": "layouts.releases",
    "WasmtimeLayout": "layouts.releases",
    "wasmtime_layout": "layouts.releases",
    "Region": "layouts.fields",
    "HostPtr": "layouts.ptr",
    "PtrSize": "layouts.ptr",
    "invalid_ptr": "layouts.ptr",
    "size_of_vmcaller_checked_anyfunc": "layouts.ptr",
    "size_of_vmglobal_definition": "layouts.ptr",
    "vmcaller_checked_anyfunc_func_ptr": "layouts.ptr",
    "vmcaller_checked_anyfunc_type_index": "layouts.ptr",
    "vmcaller_checked_anyfunc_vmctx": "layouts.ptr",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "__version__",
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
