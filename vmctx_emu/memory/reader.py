"""The read side shared by live instances and loaded dumps: `get`, the Rust-named getters, flags, views, magic.

Everything here reads the context's own bytes at computed offsets; nothing
follows a pointer found in them. `get(field, index)` reads one element of a
field through the geometry table of the context's layout, pointer size and
byte order (`geometry.py`), asserting (debug builds) what the release's Rust
getter asserts. The Rust-named getters (`lowering(i)`, `runtime_memory(i)`,
`trampoline_func_ref(i)`, ...) are thin wrappers over `get`, present on the
contexts of the releases that have them.
"""

import copy
import sys
from collections.abc import Mapping
from functools import lru_cache, partial

from ..constants import VMCOMPONENT_MAGIC
from ..errors import ArgumentTypeError, ArgumentValueError, BadMagicError, ClosedError, InvalidPtrSizeError, \
    LayoutError, VMContextError
from ..layouts.ptr import EMULATED_PTR_SIZES, HostPtr, as_ptr_size
from ..layouts.releases import LAYOUTS, resolve_wasmtime
from ..layouts.types import VMLOWERING
from ..checks import check_bool, check_byte_order
from .flags import InstanceFlags
from .geometry import element_tuple, geometry
from .magic import magic_mismatch_message
from .views import region_view, subfield_view

__all__ = ["ContextReader", "RustAccessor", "RUST_ACCESSORS", "VMLowering"]

VMLowering = element_tuple(VMLOWERING)

_new_tuple = tuple.__new__

# The typed views a context keeps of its memory (host byte order only), by the kind they read.
_WORD_CODES = {"ptr8": "Q", "ptr4": "I", "u32": "I", "i32": "i"}


def rust_accessor_names():
    """Every Rust-named runtime getter and setter any release has (`lowering`, `set_trampoline`, ...)."""
    names = set()
    for layout in LAYOUTS:
        for spec in layout.setters:
            names |= {spec.name, *(layout.field(f).runtime_getter for f in spec.fields)}
    return frozenset(names)


RUST_ACCESSORS = rust_accessor_names()


class RustAccessor:
    """A Rust-named runtime accessor on the class: present on the contexts whose release has it.

    On a context of such a release it is `get` with the field filled in (a
    getter) or `set` with the setter's name filled in, bound to the context
    like a method; elsewhere (`set_always_trap` in v50, any setter of a
    dump) it is an `AttributeError`, as a missing Rust method. The bound
    accessor is made on each lookup and never kept on the context (that
    would be a reference cycle): bind it once (`get = ctx.lowering`) in a
    hot loop.
    """

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __get__(self, ctx, owner=None):
        if ctx is None:
            return self
        try:
            method, key = ctx._accessors[self.name]
        except (KeyError, AttributeError):
            raise AttributeError(f"{type(ctx).__name__!r} object has no attribute {self.name!r}") from None
        return partial(method, ctx, key)


@lru_cache(maxsize=None)
def accessor_table(cls, table):
    """Rust name -> (method, key) of every accessor a `cls` context of `table`'s layout has: its getters
    (`get`, the field), and its setters where `cls.writable` (`cls.setter_methods`)."""
    named = {getter.name: (ContextReader.get, getter.field.name) for getter in table.getters.values()}
    if cls.writable:
        named.update(cls.setter_methods(table))
    return named


def with_rust_accessors(cls):
    """Class decorator: every name of `RUST_ACCESSORS` as a `RustAccessor` of `cls`."""
    for name in sorted(RUST_ACCESSORS):
        setattr(cls, name, RustAccessor(name))
    return cls


@with_rust_accessors
class ContextReader:
    """`get` and the getters with the Rust names over one context's bytes, for one target layout.

    Subclasses attach the bytes (`_attach`) once the target is set
    (`_set_target`); `writable` says whether the release's setters exist.
    """

    writable = False
    _raw = None
    _vmctx = None
    geometry = None

    def _set_target(self, component, ptr, byte_order, debug_assertions, wasmtime=None):
        resolution = resolve_wasmtime(wasmtime)
        self.layout = resolution.layout
        self.wasmtime = resolution.version  # as resolved: "21.0.2" for "21"; "48.0.11", a patch the table lacks
        self.release = resolution.release  # the table's release that stands for it: "48.0.10"
        if isinstance(component, Mapping):
            unknown = sorted(map(str, set(component) - set(self.layout.count_names)))
            if unknown:
                raise LayoutError(f"{', '.join(unknown)} is not a count of {self.layout.name}; "
                                  f"its counts are {', '.join(self.layout.count_names)}")
            component = self.layout.component(**component)
        ptr = as_ptr_size(ptr)
        if ptr not in EMULATED_PTR_SIZES:
            raise InvalidPtrSizeError(
                f"memory can be emulated for pointer sizes {EMULATED_PTR_SIZES} only, got {int(ptr)}: "
                f"other sizes are offsets-only (use VMComponentOffsets)"
            )
        self.ptr = ptr
        self.byte_order = check_byte_order(byte_order)
        self.debug_assertions = check_bool("debug_assertions", debug_assertions)
        self.offsets = self.layout.offsets_class(ptr, component)
        self.geometry = geometry(self.layout, ptr, byte_order)
        self._accessors = accessor_table(type(self), self.geometry)
        self.is_host_layout = ptr == HostPtr and byte_order == sys.byteorder
        self.words = {}
        self._plans = {}  # accessor -> what its short path needs (host byte order, live only; see `get`)

    def _attach(self, raw):
        """Read (and write) `raw`, a 'B' memoryview of exactly `size_of_vmctx()` bytes.

        In the host's byte order `words` holds it cast to each word type
        ("Q", "I", "i"): the short paths of `get`, `set` and the flag bits
        index those instead of unpacking bytes. `words` is one dict for the
        context's life, emptied when it closes.
        """
        self._raw = raw
        if self.byte_order == sys.byteorder:
            n = len(raw)
            self.words.update({code: raw[: n - n % (8 if code == "Q" else 4)].cast(code) for code in ("Q", "I", "i")})

    def detached_copy(self):
        """A copy of this context reading no bytes yet: its layout, pointer size, byte order and build, worked
        out once, shared; nothing it keeps of its own bytes (`_attach` gives the copy its own)."""
        other = copy.copy(self)
        other._raw, other.words, other._plans = None, {}, {}
        return other

    def _detach(self):
        """Forget the memory and every view of it kept here."""
        self._raw = None
        self.words.clear()  # the same dict every flag handle of this context reads
        self._plans = {}

    def _live(self):
        raw = self._raw
        if raw is None:
            raise ClosedError(f"this {type(self).__name__} is closed")
        return raw

    # -- the Rust-named accessors -------------------------------------------

    def __dir__(self):
        mine = getattr(self, "_accessors", {})
        return sorted(name for name in super().__dir__() if name in mine or name not in RUST_ACCESSORS)

    def get(self, field, index):
        """Element `index` of `field` as the release's Rust getter returns it.

        The value (a namedtuple such as `VMLowering` for a multi-word
        element), or for an element holding this context's address (a func
        ref) the element's address; debug builds assert the sub-fields the
        Rust getter asserts no longer hold INVALID_PTR.
        """
        # The short path: host byte order, a plain in-range int, and (debug) every checked slot set;
        # anything else is `_get`'s, which checks, raises or converts.
        try:
            count, words, start, stride, second, invalid, value_tuple = self._plans[field]
        except KeyError:
            return self._get(field, index)
        if index.__class__ is int and 0 <= index < count:
            at = start + index * stride
            if second is None:
                value = words[at]
                if value != invalid or not self.debug_assertions:
                    return value
            else:
                first, second = words[at], words[at + second]
                if first != invalid != second or not self.debug_assertions:
                    return _new_tuple(value_tuple, (first, second))
        return self._get(field, index)

    def _get(self, field, index):
        getter = self.geometry.getter_of.get(field)
        if getter is None:
            raise ArgumentValueError(f"{field!r} has no runtime getter in {self.layout.name}; fields with one: "
                                     f"{', '.join(self.geometry.getter_of)}")
        table, region = getter.field, self.offsets.region(field)
        if index.__class__ is int and 0 <= index < region.count:
            offset = region.offset + index * table.stride
        else:
            offset = self.offsets.element_offset(field, index)
        raw = self._live()
        in_memory = table.element.unpack_from(raw, offset)
        values = tuple(in_memory[k] for k in table.memory_order)
        if getter.checked and self.debug_assertions:
            for sub in getter.checked:
                value = values[table.subs.index(sub)]
                if value == self.geometry.invalid:
                    what = "slot" if len(table.subs) == 1 else sub.name
                    raise VMContextError(f"{getter.name}({index}): {what} at offset {offset + sub.offset} read "
                                         f"before it was set (still INVALID_PTR {value:#x})")
        if field not in self._plans:
            self._plan_get(getter, region)
        if getter.returns_address:
            if self._vmctx is None:
                raise VMContextError(f"{getter.name}({index}): the context's address is unknown")
            return self._vmctx + offset
        return values[0] if getter.value_tuple is None else getter.value_tuple(*values)

    def _plan_get(self, getter, region):
        """`get`'s short path for `getter`: one or two words of one type, aligned, in the host's byte order."""
        subs = getter.field.subs
        code = self._word_code(subs, region, getter.field.stride)
        if code is None or getter.returns_address or len(subs) > 2:
            return
        width = subs[0].width
        second = None if len(subs) == 1 else (subs[1].offset - subs[0].offset) // width
        # Unchecked sub-fields compare with -1, which no word holds.
        self._plans[getter.field.name] = (
            region.count, self.words[code], (region.offset + subs[0].offset) // width, getter.field.stride // width,
            second, self.geometry.invalid if getter.checked else -1, getter.value_tuple)

    def _word_code(self, subs, region, stride):
        """The `words` view that reads every one of `subs` in every element of `region`, or None."""
        kinds = {"ptr8" if s.kind == "ptr" and s.width == 8 else "ptr4" if s.kind == "ptr" else s.kind for s in subs}
        if not self.words or len(kinds) != 1:
            return None
        code = _WORD_CODES[kinds.pop()]
        width = subs[0].width
        if stride % width or any((region.offset + s.offset) % width for s in subs):
            return None
        return code

    # -- the context ---------------------------------------------------------

    @property
    def closed(self):
        return self._raw is None

    @property
    def vmctx(self):
        """The context's address (None for a dump taken without one).

        Raises `ClosedError` after `close()`: a native call given the address
        of freed memory would read it.
        """
        if self._raw is None:
            self._live()
        return self._vmctx

    @vmctx.setter
    def vmctx(self, address):
        self._vmctx = address

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

    def _region(self, name):
        """Region `name` and its declared field; `UnknownRegionError` names the known regions."""
        if not isinstance(name, str):
            raise ArgumentTypeError(f"region name must be a str, got {type(name).__name__} {name!r}")
        region = self.offsets.region(name)
        return region, self.layout.field(name)

    def view(self, name):
        """A zero-copy numpy view of region `name` (as in `offsets.regions()`)."""
        raw = self._live()
        region, field = self._region(name)
        return region_view(raw, region, field.elem_type, self.ptr, self.byte_order)

    def subview(self, name, sub):
        """One sub-field of every element of region `name`, as a strided numpy view."""
        raw = self._live()
        region, field = self._region(name)
        if not isinstance(sub, str):  # numpy would take an int as an element index
            raise ArgumentTypeError(f"region {name!r} has no sub-field {sub!r}: sub-field names are str, got "
                                    f"{type(sub).__name__}")
        try:
            return subfield_view(raw, region, field.elem_type, sub, self.ptr, self.byte_order)
        except (ValueError, IndexError, KeyError, TypeError):
            # numpy's own words for an unknown field name; checked here only when it failed (initialization
            # takes a subview per store).
            names = [s.name for s in field.elem_type.subfields]
            if sub in names:
                raise
            raise ArgumentValueError(f"region {name!r} has no sub-field {sub!r}; its elements "
                                     f"({field.elem_type.rust_name}) have {', '.join(names)}") from None

    def check_magic(self):
        """Raise `BadMagicError` (a `VMContextError`) unless the u32 at offset 0 is `VMCOMPONENT_MAGIC`."""
        raw = self._live()[:4]
        if self.geometry.words["u32"].unpack_from(raw)[0] != VMCOMPONENT_MAGIC:
            raise BadMagicError(magic_mismatch_message(self.vmctx, raw, self.byte_order, self.ptr), found=bytes(raw),
                                address=self.vmctx)

    # -- getters that are not per-field ---------------------------------

    def store(self):
        """The store fat pointer as (data, vtable); a null store fails like Rust's `assert!`."""
        if "store" not in self.geometry.fields:
            raise VMContextError(f"store() does not exist in {self.layout.name}: the store pointer "
                                 "left the context at v30")
        offset = self.offsets.store()
        data, vtable = self.geometry.fields["store"].element.unpack_from(self._live(), offset)
        if data == 0:
            raise VMContextError(f"store(): the store pointer at offset {offset} is null")
        return (data, vtable)

    def instance_flags(self, index):
        """The flag global of component instance `index` (`may_leave` from v47)."""
        if self._raw is None:
            self._live()  # closed: that, before any complaint about the index
        offset = self.offsets.element_offset(self.layout.flags_field().name, index)
        return InstanceFlags(self, offset, index, self.byte_order)
