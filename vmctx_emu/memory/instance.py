"""An emulated component instance: a real, initialized `VMComponentContext` and its runtime API.

Mirrors `OwnedComponentInstance` / `ComponentInstance` in Wasmtime's
crates/runtime/src/component.rs (runtime.md): allocation, `initialize_vmctx`,
the debug poison, set-once setters, checked getters and `from_opaque`.
"""

import os
import struct
import sys

from ..errors import ArgumentTypeError, ArgumentValueError, VMContextError
from ..checks import U32_LIMIT, check_int, check_ptr
from ..layouts.ptr import HostPtr
from . import dump_writer
from .buffer import LIVE, AlignedBuffer
from .geometry import attr_name
from .initializer import check_header, initial_fills
from .native import c_setter, run_setter
from .reader import ContextReader, VMLowering

__all__ = ["OwnedComponentInstance", "VMComponentContext", "VMLowering"]

# Synthetic addresses for emulated targets start here and are handed out first-fit, page-aligned.
_SYNTHETIC_BASE = 0x1000_0000
_PAGE = 0x1000
# Fills of at most this many stores are written as ints, larger ones through numpy.
_SMALL_FILL = 64
_NO_VALUE = object()  # `_set_one` called without its value: `_set` says how many were wanted


def _synthetic_address(size, ptr):
    return LIVE.free_range(size, _SYNTHETIC_BASE, 1 << (8 * int(ptr)), _PAGE)


class OwnedComponentInstance(ContextReader):
    """A component instance's context in real memory, initialized as Wasmtime does.

    With the host pointer size and byte order the bytes live in a ctypes
    allocation and `vmctx` is its address; otherwise they are laid out for the
    emulated target and `vmctx` is `address` (or a synthetic one) wherever the
    context's own address must be stored. `set` and `get` write and read
    through the layout's geometry table; the release's runtime setters
    (`set_lowering`, `set_trampoline`, ...) and getters, with its Rust names
    and arguments, are thin wrappers over them.
    """

    writable = True

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
        self._header = check_header(self.layout, self.ptr, store, header)

        size = self.offsets.size_of_vmctx()
        # At least pointer-aligned like the Rust allocation; 16 so the flag
        # globals (align 16) are aligned in absolute terms too.
        self._buffer = AlignedBuffer(size, max(16, int(self.ptr)))
        self._attach(self._buffer.raw)
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
        check_ptr("address", address, self.ptr)
        if address % max(16, int(self.ptr)) or address == 0:
            raise ArgumentValueError(f"address {address:#x} must be non-null and 16-byte aligned")
        if address + size > 1 << (8 * int(self.ptr)):
            raise ArgumentValueError(
                f"address {address:#x} + size {size} does not fit a {int(self.ptr)}-byte pointer"
            )
        return address

    def _initialize_vmctx(self):
        """`initialize_vmctx`: the plan C's initializer applies too (magic, headers, flags, poison)."""
        words = self.words  # empty unless in the host's byte order
        for fill in initial_fills(self.layout, self.offsets, self._header, self.debug_assertions):
            w = fill.width
            if words and fill.count <= _SMALL_FILL and w in (4, 8) and not fill.offset % w and not fill.stride % w:
                # A few stores: plain int stores through a word view beat building a numpy view.
                view = words["Q" if w == 8 else "I"]
                value = fill.value & ((1 << (8 * w)) - 1)  # an i32 flag word as its unsigned bits
                start, step = fill.offset // w, fill.stride // w
                for i in range(start, start + fill.count * step, step):
                    view[i] = value
            else:
                self.subview(fill.field, fill.sub)[:] = fill.value

    # -- lifetime -------------------------------------------------------

    def dump(self, path):
        """Write the bytes to `path` and the layout to `path + '.json'`: one atomic unit (`vmctx_emu.dumps`).

        The memory layer knows no dump format: this is the writer registered
        with it (`vmctx_emu.memory.register_dump_writer`; the package's top
        level registers `vmctx_emu.dumps.dump.write_dump`).
        """
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise ArgumentTypeError(f"dump path must be a str or path-like, got {type(path).__name__} {path!r}")
        self._live()
        return dump_writer()(self, path)

    def close(self):
        """Forget the memory; views taken earlier keep it alive, so nothing reads freed memory."""
        if self._raw is not None:
            LIVE.remove(self._vmctx)
            self._detach()
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

    # -- the runtime setters --------------------------------------------------

    @classmethod
    def setter_methods(cls, table):
        """Rust name -> (method, setter name) of `table`'s setters: `_set_one` for one word, else `_set_many`."""
        return {name: (cls._set_one if spec.one_word else cls._set_many, name) for name, spec in table.setters.items()}

    def set(self, setter, index, *args):
        """The release's runtime setter `setter` (`"set_lowering"`, ...) on element `index`, with its Rust arguments.

        Every argument is checked (type, range, the Rust null rule) and, in
        debug builds, every slot it writes must still hold INVALID_PTR (set
        once only) before anything is written; a sub-field with the role
        `vmctx` gets the context's own address.
        """
        spec = self.geometry.setters.get(setter)
        if spec is None:
            raise ArgumentValueError(f"{self.layout.name} has no setter {setter!r}; its setters: "
                                     f"{', '.join(self.geometry.setters)}")
        if spec.one_word:
            return self._set_one(setter, index, *args)
        return self._set_many(setter, index, *args)

    # The short paths (host byte order, an int index, int values, a struct as its namedtuple): one word
    # is stored by `_set_one`; more by C (`run_setter`), which writes nothing unless every value fits and
    # (debug) every asserted slot is unset. Anything else, every failure included, is `_set`'s, which
    # checks, converts and raises exactly as the Rust setter fails.

    def _set_one(self, setter, index, value=_NO_VALUE, *more):
        """`set` for a setter of one value (a pointer, or a u32) into the slot it asserts unset."""
        try:
            count, words, start, stride, low, high, invalid = self._plans[setter]
        except KeyError:
            pass
        else:
            if index.__class__ is int and 0 <= index < count and value.__class__ is int and low <= value < high \
                    and not more:
                at = start + index * stride
                if not self.debug_assertions or words[at] == invalid:
                    words[at] = value
                    return None
        return self._set(setter, index, more if value is _NO_VALUE else (value, *more))

    def _set_many(self, setter, index, *args):
        """`set` for a setter of several values (a struct first, or scalars), and its context's address."""
        try:
            native, pack, first_struct, _ = self._plans[setter]
        except KeyError:
            pass
        else:
            if first_struct is None:
                values = args
            elif args and args[0].__class__ is first_struct:
                values = args[0] + args[1:]
            else:
                values = (None,)
            for value in values:
                if value.__class__ is not int:
                    break
            else:
                try:
                    if index.__class__ is int and not run_setter(native, index, self.debug_assertions, pack(*values)):
                        return None
                except (OverflowError, struct.error):  # a value or index < 0 or past 2**64, a wrong count
                    pass
        return self._set(setter, index, args)

    def _set(self, setter, index, args):
        spec = self.geometry.setters[setter]
        if len(args) != len(spec.args):
            raise ArgumentTypeError(f"{self.layout.name} has {spec.signature}; got {len(args)} argument(s) "
                                    "after the index")
        raw = self._live()
        regions = [self.offsets.region(f.name) for f in spec.fields]
        if index.__class__ is int and 0 <= index < min(r.count for r in regions):
            starts = [r.offset + index * f.stride for r, f in zip(regions, spec.fields)]
        else:
            starts = [self.offsets.element_offset(f.name, index) for f in spec.fields]
        call = f"{setter}({index})"
        writes = []
        for arg, value in zip(spec.args, args):
            for sub, null, label, v in zip(arg.subs, arg.nulls, arg.labels, _arg_values(call, arg, value)):
                writes.append((sub.word, starts[arg.field] + sub.offset, self._check_value(call, label, sub, v, null)))
        if self.debug_assertions:
            invalid = self.geometry.invalid
            for k, sub, label in spec.asserts:
                offset = starts[k] + sub.offset
                found = sub.word.unpack_from(raw, offset)[0]
                if found != invalid:
                    raise VMContextError(f"{call}: {label} at offset {offset} already holds {found:#x}, not "
                                         f"INVALID_PTR {invalid:#x} (it can be set once only)")
        for word, offset, value in writes:
            word.pack_into(raw, offset, value)
        for k, sub in spec.own_vmctx:
            sub.word.pack_into(raw, starts[k] + sub.offset, self._vmctx)
        if setter not in self._plans:
            self._plan_set(spec, regions)

    def _plan_set(self, spec, regions):
        """`set`'s short path for `spec`, where every word it checks or writes is a host-order word."""
        if not self.words or any(s.kind == "i32" for arg in spec.args for s in arg.subs):
            return
        asserted = [(k, s) for k, s, _ in spec.asserts]
        places, codes = {}, {}
        for k, sub in [(arg.field, s) for arg in spec.args for s in arg.subs] + asserted + list(spec.own_vmctx):
            stride = spec.fields[k].stride
            codes[(k, sub)] = self._word_code((sub,), regions[k], stride)
            if codes[(k, sub)] is None:
                return
            places[(k, sub)] = (regions[k].offset + sub.offset, stride, sub.width, int(sub.kind == "ptr"))
        count = min(r.count for r in regions)
        (arg, *more), invalid = spec.args, self.geometry.invalid
        if spec.one_word:
            # The bounds take a non-null pointer or any u32; null, and the Rust rule for it, is `_set`'s.
            key = (arg.field, arg.subs[0])
            offset, stride, width, nonnull = places[key]
            self._plans[spec.name] = (count, self.words[codes[key]], offset // width, stride // width,
                                      nonnull, 1 << (8 * width), invalid)
            return
        if len(arg.subs) > 1 and arg.value_tuple is None or any(len(a.subs) > 1 for a in more):
            return  # only a first argument may be a struct (every release's setters are so)
        values = [places[(a.field, s)] for a in spec.args for s in a.subs]
        native, pack, keep = c_setter(self._buffer.address, len(self._raw), count, values,
                                      [places[key] for key in asserted], [places[key] for key in spec.own_vmctx],
                                      invalid, self._vmctx)
        self._plans[spec.name] = (native, pack.pack, arg.value_tuple if len(arg.subs) > 1 else None, keep)

    def _check_value(self, call, label, sub, value, null):
        """`value` for sub-field `sub` (argument `label` of `call`): its type, range and the Rust `null` rule."""
        if sub.kind != "ptr":
            return check_int(f"{call}: {label}", value, 0, U32_LIMIT, kind="a u32 (an int)", bound="a u32")
        if value is None and null == "allowed":
            return 0
        value = check_ptr(f"{call} {label}", value, self.ptr)
        if value == 0 and null == "never":
            raise ArgumentValueError(f"{call}: {label} must be non-null (a NonNull or fn pointer in "
                                     f"{self.layout.name})")
        if value == 0 and null == "debug" and self.debug_assertions:
            raise VMContextError(f"{call}: the {sub.role} pointer must be non-null "
                                 f"(debug_assert! in {self.layout.name})")
        return value


def _arg_values(call, arg, value):
    """The sub-field values one Rust argument carries: a scalar, or a tuple/namedtuple for a struct."""
    if len(arg.subs) == 1:
        return (value,)
    names = [s.name for s in arg.subs]
    if all(hasattr(value, attr_name(n)) for n in names):
        return tuple(getattr(value, attr_name(n)) for n in names)
    if isinstance(value, (tuple, list)) and len(value) == len(names):
        return tuple(value)
    raise ArgumentTypeError(f"{call}: {arg.name} must have {', '.join(names)} "
                            f"(a namedtuple or a {len(names)}-tuple), got {value!r}")


class VMComponentContext:
    """Namespace for `from_opaque`, as in Wasmtime."""

    @staticmethod
    def from_opaque(address):
        """The live instance whose context starts at `address`, after checking its magic.

        Only contexts this package allocated are looked at: any other address
        is refused without reading it.
        """
        check_int("from_opaque: address", address, 0, 1 << 64, bound="in [0, 2**64)", hex_value=True)
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
