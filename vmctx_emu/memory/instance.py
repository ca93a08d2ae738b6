"""An emulated component instance: a real, initialized `VMComponentContext` and its runtime API.

Mirrors `OwnedComponentInstance` / `ComponentInstance` in Wasmtime's
crates/runtime/src/component.rs (runtime.md): allocation, `initialize_vmctx`,
the debug poison, set-once setters, checked getters and `from_opaque`.
"""

import os
import sys

from ..errors import ArgumentTypeError, ArgumentValueError, VMContextError
from ..layouts.ptr import HostPtr
from .buffer import LIVE, AlignedBuffer
from .initializer import check_header, initial_fills
from .reader import ContextReader, VMLowering, attr_name

__all__ = ["OwnedComponentInstance", "VMComponentContext", "VMLowering"]

# Synthetic addresses for emulated targets start here and are handed out first-fit, page-aligned.
_SYNTHETIC_BASE = 0x1000_0000
_PAGE = 0x1000


def _synthetic_address(size, ptr):
    return LIVE.free_range(size, _SYNTHETIC_BASE, 1 << (8 * int(ptr)), _PAGE)


class OwnedComponentInstance(ContextReader):
    """A component instance's context in real memory, initialized as Wasmtime does.

    With the host pointer size and byte order the bytes live in a ctypes
    allocation and `vmctx` is its address; otherwise they are laid out for the
    emulated target and `vmctx` is `address` (or a synthetic one) wherever the
    context's own address must be stored. The release's runtime setters
    (`set_lowering`, `set_trampoline`, ...) and getters are methods with its
    Rust names and arguments.
    """

    _flags_writable = True

    def __init__(
        self,
        component,
        store=None,
        *,
        ptr=HostPtr,
        byte_order=sys.byteorder,
        debug_assertions=True,
        address=None,
        wasmtime=None,
        header=None,
    ):
        self._set_target(component, ptr, byte_order, debug_assertions, wasmtime)
        self._header = check_header(self.layout, self.ptr, store, header, explicit=wasmtime is not None)

        size = self.offsets.size_of_vmctx()
        # At least pointer-aligned like the Rust allocation; 16 so the flag
        # globals (align 16) are aligned in absolute terms too.
        self._buffer = AlignedBuffer(size, max(16, int(self.ptr)))
        self._raw = self._buffer.raw
        self.vmctx = self._place(address, size)
        self._initialize_vmctx()
        LIVE.add(self._vmctx, self, size)

    # -- construction ---------------------------------------------------

    def _place(self, address, size):
        if self.is_host_layout:
            if address is not None and address != self._buffer.address:
                raise ArgumentValueError(
                    "address= is for emulating another target; a host-layout context lives at "
                    f"its real address {self._buffer.address:#x}"
                )
            return self._buffer.address
        if address is None:
            return _synthetic_address(size, self.ptr)
        self._check_ptr("address", address)
        if address % max(16, int(self.ptr)) or address == 0:
            raise ArgumentValueError(f"address {address:#x} must be non-null and 16-byte aligned")
        if address + size > 1 << (8 * int(self.ptr)):
            raise ArgumentValueError(
                f"address {address:#x} + size {size} does not fit a {int(self.ptr)}-byte pointer"
            )
        return address

    def _initialize_vmctx(self):
        """`initialize_vmctx`: the plan C's initializer applies too (magic, headers, flags, poison)."""
        for fill in initial_fills(self.layout, self.offsets, self._header, self.debug_assertions):
            self.subview(fill.field, fill.sub)[:] = fill.value

    # -- lifetime -------------------------------------------------------

    def dump(self, path):
        """Write the bytes to `path` and the layout to `path + '.json'`, each atomically."""
        from ..dumps.dump import write_dump

        if not isinstance(path, (str, bytes, os.PathLike)):
            raise ArgumentTypeError(f"dump path must be a str or path-like, got {type(path).__name__} {path!r}")
        self._live()
        return write_dump(self, path)

    def close(self):
        """Forget the memory; views taken earlier keep it alive, so nothing reads freed memory."""
        if self._raw is not None:
            LIVE.remove(self._vmctx)
            self._raw = None
            self._buffer = None

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"at {self._vmctx:#x}"
        return (f"<OwnedComponentInstance {state}, ptr={int(self.ptr)}, {self.byte_order}-endian, "
                f"{self.offsets.size_of_vmctx()} bytes>")

    # -- setters (derived from the declaration: see `runtime_setters`) ----

    def _store(self, offset, value):
        self._ptr_word.pack_into(self._live(), offset, value)

    def _store_kind(self, kind, offset, value):
        word = self._ptr_word if kind == "ptr" else self._u32 if kind == "u32" else self._i32
        word.pack_into(self._live(), offset, value)

    def _check_unset(self, accessor, index, offset, what="slot"):
        """Debug builds: a setter's slot must still hold INVALID_PTR (set once only)."""
        found = self._load(offset)
        if found != self._invalid:
            raise VMContextError(
                f"{accessor}({index}): {what} at offset {offset} already holds {found:#x}, "
                f"not INVALID_PTR {self._invalid:#x} (it can be set once only)"
            )

    def _check_value(self, call, arg, sub, value, null):
        """Argument `arg` of `call` for sub-field `sub`: its type, range and the Rust `null` rule."""
        if sub.kind != "ptr":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ArgumentTypeError(f"{call}: {arg} must be a u32 (an int), got {type(value).__name__} {value!r}")
            if not 0 <= value < 1 << 32:
                raise ArgumentValueError(f"{call}: {arg} must be a u32, got {value!r}")
            return value
        if value is None and null == "allowed":
            return 0
        value = self._check_ptr(f"{call} {arg}", value)
        if value == 0 and null == "never":
            raise ArgumentValueError(f"{call}: {arg} must be non-null (a NonNull or fn pointer in {self.layout.name})")
        if value == 0 and null == "debug" and self.debug_assertions:
            raise VMContextError(f"{call}: the {sub.role} pointer must be non-null "
                                 f"(debug_assert! in {self.layout.name})")
        return value


def _arg_values(setter_name, index, arg, value):
    """The sub-field values one Rust argument carries: a scalar, or a tuple/namedtuple for a struct."""
    if len(arg.subs) == 1:
        return (value,)
    if all(hasattr(value, attr_name(s)) for s in arg.subs):
        return tuple(getattr(value, attr_name(s)) for s in arg.subs)
    if isinstance(value, (tuple, list)) and len(value) == len(arg.subs):
        return tuple(value)
    raise ArgumentTypeError(f"{setter_name}({index}): {arg.name} must have {', '.join(arg.subs)} "
                            f"(a namedtuple or a {len(arg.subs)}-tuple), got {value!r}")


def _setter(layout, spec):
    """`spec` as a method: check every argument, assert (debug) the slots are unset, write, fill `vmctx`."""
    fields = {name: layout.field(name) for name in spec.fields}
    asserts = spec.asserts or tuple((f, s) for f in spec.fields for s in fields[f].poison)
    own_vmctx = tuple((f, fields[f].elem_type.role_sub("vmctx")) for f in spec.fields
                      if fields[f].elem_type.role_sub("vmctx"))
    signature = f"{spec.name}(index, {', '.join(a.name.rstrip('_') for a in spec.args)})"

    def set_(self, index, *args):
        if len(args) != len(spec.args):
            raise ArgumentTypeError(f"{layout.name} has {signature}; got {len(args)} argument(s) after the index")
        self._live()
        starts = {f: self.offsets.element_offset(f, index) for f in spec.fields}
        writes = []
        for arg, value in zip(spec.args, args):
            field = fields[arg.field]
            for sub_name, v in zip(arg.subs, _arg_values(spec.name, index, arg, value)):
                sub = field.elem_type.sub(sub_name)
                what = f"{arg.name.rstrip('_')}" + (f".{sub_name}" if len(arg.subs) > 1 else "")
                v = self._check_value(f"{spec.name}({index})", what, sub, v, arg.null or sub.null)
                writes.append((sub.kind, starts[arg.field] + self._sub_offset(field, sub_name), v))
        if self.debug_assertions:
            for f, sub in asserts:
                self._check_unset(spec.name, index, starts[f] + self._sub_offset(fields[f], sub), f"{f}.{sub}")
        for kind, offset, value in writes:
            self._store_kind(kind, offset, value)
        for f, sub in own_vmctx:
            self._store(starts[f] + self._sub_offset(fields[f], sub.name), self._vmctx)

    set_.__name__ = spec.name
    set_.__doc__ = f"`{signature}` as in {layout.name}'s runtime."
    return set_


def runtime_setters(layout):
    """Setter name -> method for every setter `layout` declares."""
    return {spec.name: _setter(layout, spec) for spec in layout.setters}


OwnedComponentInstance._setters_for = runtime_setters


class VMComponentContext:
    """Namespace for `from_opaque`, as in Wasmtime."""

    @staticmethod
    def from_opaque(address):
        """The live instance whose context starts at `address`, after checking its magic.

        Only contexts this package allocated are looked at: any other address
        is refused without reading it.
        """
        if isinstance(address, bool) or not isinstance(address, int):
            raise ArgumentTypeError(f"from_opaque: address must be an int, got {type(address).__name__} {address!r}")
        if not 0 <= address < 1 << 64:
            raise ArgumentValueError(f"from_opaque: address must be in [0, 2**64), got {address:#x}")
        inst = LIVE.get(address)
        if inst is None:
            owner = LIVE.containing(address)
            if owner is not None:
                raise VMContextError(
                    f"{address:#x} is not the start of a VMComponentContext: it lies at offset "
                    f"{address - owner.vmctx} inside the context at {owner.vmctx:#x}"
                )
            raise VMContextError(
                f"{address:#x} is not the address of a live emulated VMComponentContext "
                "(refusing to read memory this package does not own)"
            )
        # The magic sits at offset 0 so this check never trusts offsets read from memory.
        inst.check_magic()
        return inst
