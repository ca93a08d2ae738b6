"""An emulated component instance: a real, initialized `VMComponentContext` and its runtime API.

Mirrors `OwnedComponentInstance` / `ComponentInstance` in Wasmtime's
crates/runtime/src/component.rs (runtime.md): allocation, `initialize_vmctx`,
the debug poison, set-once setters, checked getters and `from_opaque`.
"""

import sys

from ..errors import VMContextError
from .buffer import LIVE, AlignedBuffer
from ..layouts.ptr import HostPtr
from .reader import ContextReader, VMLowering
from .views import subfield_view

__all__ = ["OwnedComponentInstance", "VMComponentContext", "VMLowering"]

# Synthetic addresses for emulated targets start here and are handed out first-fit.
_SYNTHETIC_BASE = 0x1000_0000
_PAGE = 0x1000


def _synthetic_address(size, ptr):
    limit = 1 << (8 * int(ptr))
    taken = sorted((i.vmctx, i.vmctx + i.offsets.size_of_vmctx()) for i in LIVE.instances())
    candidate = _SYNTHETIC_BASE
    for start, end in taken:
        if candidate + size <= start:
            break
        if end > candidate:
            candidate = -(-end // _PAGE) * _PAGE
    if candidate + size > limit:
        raise ValueError(f"no synthetic address below {limit:#x} has room for {size} bytes")
    return candidate


class OwnedComponentInstance(ContextReader):
    """A component instance's context in real memory, initialized as Wasmtime does.

    With the host pointer size and byte order the bytes live in a ctypes
    allocation and `vmctx` is its address; otherwise they are laid out for the
    emulated target and `vmctx` is `address` (or a synthetic one) wherever the
    context's own address must be stored.
    """

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
        self._header = self._check_header(store, header, explicit=wasmtime is not None)

        size = self.offsets.size_of_vmctx()
        # At least pointer-aligned like the Rust allocation; 16 so the flag
        # globals (align 16) are aligned in absolute terms too.
        self._buffer = AlignedBuffer(size, max(16, int(self.ptr)))
        self._raw = self._buffer.raw
        self.vmctx = self._place(address, size)
        self._initialize_vmctx()
        LIVE.add(self.vmctx, self)

    # -- construction ---------------------------------------------------

    def _check_header(self, store, header, explicit):
        """Every header pointer this release's `initialize_vmctx` writes, checked.

        `store=` fills the `store` header. With an explicit `wasmtime=` every
        header must be given; the seed's default keeps a null store.
        """
        names = self.layout.header_names()
        given = dict(header or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"header {', '.join(unknown)} is not written by {self.layout.range_text}; "
                             f"its header pointers are: {', '.join(names)}")
        if store is not None:
            if "store" not in names:
                raise ValueError(f"{self.layout.range_text} has no store pointer (removed at v30)")
            if "store" in given and tuple(given["store"]) != tuple(store):
                raise ValueError("store given twice, as store= and header['store'], with different values")
            given["store"] = store
        if not explicit:
            given.setdefault("store", (0, 0))
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"header value missing for {', '.join(missing)}: {self.layout.range_text} "
                             f"writes {', '.join(names)} at initialization")
        checked = {}
        for name, value in given.items():
            if name == "store":
                try:
                    data, vtable = value
                except (TypeError, ValueError):
                    raise ValueError(f"store must be a (data_ptr, vtable_ptr) pair, got {value!r}") from None
                checked[name] = (self._check_ptr("store data pointer", data),
                                 self._check_ptr("store vtable pointer", vtable))
            else:
                checked[name] = self._check_ptr(f"header {name}", value)
        return checked

    def _place(self, address, size):
        if self.is_host_layout:
            if address is not None and address != self._buffer.address:
                raise ValueError(
                    "address= is for emulating another target; a host-layout context lives at "
                    f"its real address {self._buffer.address:#x}"
                )
            return self._buffer.address
        if address is None:
            return _synthetic_address(size, self.ptr)
        self._check_ptr("address", address)
        if address % max(16, int(self.ptr)) or address == 0:
            raise ValueError(f"address {address:#x} must be non-null and 16-byte aligned")
        if address + size > 1 << (8 * int(self.ptr)):
            raise ValueError(
                f"address {address:#x} + size {size} does not fit a {int(self.ptr)}-byte pointer"
            )
        return address

    def _initialize_vmctx(self):
        """`initialize_vmctx`: magic, store, flag globals; then, in debug builds, the poison."""
        for field, region in self._fields():
            if not region.count:
                continue
            for sub, value in field.init:
                if isinstance(value, tuple):
                    name, part = value
                    value = self._header[name] if part is None else self._header[name][part]
                self._subview(field, region, sub)[:] = value
            if self.debug_assertions:
                for sub in field.poison:
                    self._subview(field, region, sub)[:] = self._invalid

    def _subview(self, field, region, sub):
        return subfield_view(self._raw, region, field.elem_type, sub, self.ptr, self.byte_order)

    # -- lifetime -------------------------------------------------------

    def dump(self, path):
        """Write the bytes to `path` and the layout to `path + '.json'`, each atomically."""
        from ..dumps.dump import write_dump

        return write_dump(self, path)

    def close(self):
        """Forget the memory; views taken earlier keep it alive, so nothing reads freed memory."""
        if self._raw is not None:
            LIVE.remove(self.vmctx)
            self._raw = None
            self._buffer = None

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"at {self.vmctx:#x}"
        return (f"<OwnedComponentInstance {state}, ptr={int(self.ptr)}, {self.byte_order}-endian, "
                f"{self.offsets.size_of_vmctx()} bytes>")

    # -- setters --------------------------------------------------------

    def _store(self, offset, value):
        self._ptr_word.pack_into(self._live(), offset, value)

    def _check_unset(self, accessor, index, offset):
        """Debug builds: a setter's slot must still hold INVALID_PTR (set once only)."""
        if self.debug_assertions:
            found = self._load(offset)
            if found != self._invalid:
                raise VMContextError(
                    f"{accessor}({index}): slot at offset {offset} already holds {found:#x}, "
                    f"not INVALID_PTR {self._invalid:#x} (it can be set once only)"
                )

    def _set_pointer(self, setter, index, offset, ptr, what=None):
        """A set-once pointer slot; with `what`, debug builds also reject null (`debug_assert!`)."""
        ptr = self._check_ptr(f"{setter}({index}) pointer", ptr)
        if what and self.debug_assertions and ptr == 0:
            raise VMContextError(f"{setter}({index}): the {what} pointer must be non-null")
        self._check_unset(setter, index, offset)
        self._store(offset, ptr)

    def set_runtime_memory(self, index, ptr):
        self._set_pointer("set_runtime_memory", index, self.offsets.runtime_memory(index), ptr, "memory")

    def set_runtime_realloc(self, index, ptr):
        self._set_pointer("set_runtime_realloc", index, self.offsets.runtime_realloc(index), ptr)

    def set_runtime_post_return(self, index, ptr):
        self._set_pointer("set_runtime_post_return", index, self.offsets.runtime_post_return(index), ptr)

    def _check_anyfunc_args(self, accessor, index, func_ptr, type_index):
        func_ptr = self._check_ptr(f"{accessor}({index}) func_ptr", func_ptr)
        if func_ptr == 0:
            raise ValueError(f"{accessor}({index}): func_ptr must be non-null (NonNull<VMFunctionBody>)")
        if isinstance(type_index, bool) or not isinstance(type_index, int) or not 0 <= type_index < 2**32:
            raise ValueError(f"{accessor}({index}): type_index must be a u32, got {type_index!r}")
        return func_ptr, type_index

    def _store_anyfunc(self, offset, func_ptr, type_index):
        self._store(offset + self.ptr.vmcaller_checked_anyfunc_func_ptr(), func_ptr)
        self._u32.pack_into(self._live(), offset + self.ptr.vmcaller_checked_anyfunc_type_index(), type_index)
        self._store(offset + self.ptr.vmcaller_checked_anyfunc_vmctx(), self.vmctx)

    def set_lowering(self, index, lowering, anyfunc_func_ptr=None, anyfunc_type_index=None):
        """Write the `VMLowering`, then (up to v8) the anyfunc `{func_ptr, type_index, vmctx: this context}`.

        From v12 lowerings have no func ref of their own: the last two
        arguments must then be left out.
        """
        has_anyfunc = hasattr(self.offsets, "lowering_anyfunc")
        if has_anyfunc != (anyfunc_func_ptr is not None):
            raise ValueError(f"set_lowering({index}): {self.layout.range_text} "
                             + ("needs anyfunc_func_ptr and anyfunc_type_index" if has_anyfunc
                                else "has no lowering anyfuncs; pass only the VMLowering"))
        callee = self._check_ptr(f"set_lowering({index}) callee", lowering.callee)
        data = self._check_ptr(f"set_lowering({index}) data", lowering.data)
        if has_anyfunc:
            anyfunc = self.offsets.lowering_anyfunc(index)
            func_ptr, type_index = self._check_anyfunc_args("set_lowering", index, anyfunc_func_ptr,
                                                            anyfunc_type_index)
        self._check_unset("set_lowering", index, self.offsets.lowering_callee(index))
        self._check_unset("set_lowering", index, self.offsets.lowering_data(index))
        if has_anyfunc:
            self._check_unset("set_lowering", index, anyfunc)
        self._store(self.offsets.lowering_callee(index), callee)
        self._store(self.offsets.lowering_data(index), data)
        if has_anyfunc:
            self._store_anyfunc(anyfunc, func_ptr, type_index)

    def set_always_trap(self, index, func_ptr, type_index):
        anyfunc = self._require("always_trap_anyfunc")(index)
        func_ptr, type_index = self._check_anyfunc_args("set_always_trap", index, func_ptr, type_index)
        self._check_unset("set_always_trap", index, anyfunc)
        self._store_anyfunc(anyfunc, func_ptr, type_index)


class VMComponentContext:
    """Namespace for `from_opaque`, as in Wasmtime."""

    @staticmethod
    def from_opaque(address):
        """The live instance whose context starts at `address`, after checking its magic.

        Only contexts this package allocated are looked at: any other address
        is refused without reading it.
        """
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
