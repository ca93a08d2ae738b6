"""The read side shared by live instances and loaded dumps: getters, flags, numpy views, magic check.

Everything here reads the context's own bytes at computed offsets; nothing
follows a pointer found in them. The runtime getters are derived from the
release's declaration: one per field the runtime sets, named like its Rust
accessor, asserting (debug builds) what the Rust getter asserts.
"""

import keyword
import struct
import sys
from collections import namedtuple
from collections.abc import Mapping
from functools import lru_cache

from ..constants import VMCOMPONENT_MAGIC
from ..errors import (ArgumentTypeError, ArgumentValueError, ClosedError, InvalidPtrSizeError, LayoutError,
                      VMContextError)
from ..layouts.ptr import HostPtr, as_ptr_size, check_ptr, invalid_ptr
from ..layouts.releases import resolve_wasmtime
from ..layouts.types import VMLOWERING
from .flags import flags_class
from .magic import magic_mismatch_message
from .views import BYTE_ORDER_CHAR, EMULATED_PTR_SIZES, check_byte_order, region_view, subfield_view

__all__ = ["ContextReader", "VMLowering", "attr_name", "check_byte_order", "element_tuple", "with_runtime"]


def attr_name(sub_name):
    """A sub-field's Python attribute name: `from` is a keyword, so `from_`."""
    return sub_name + "_" if keyword.iskeyword(sub_name) else sub_name


@lru_cache(maxsize=None)
def element_tuple(etype):
    """The namedtuple a getter returns for a multi-word element (`VMLowering(callee, data)`)."""
    name = etype.rust_name if etype.rust_name.isidentifier() else etype.c_name
    cls = namedtuple(name, [attr_name(s.name) for s in etype.subfields])
    cls.__doc__ = f"A `{etype.rust_name}`: " + ", ".join(f"{s.name} ({s.kind})" for s in etype.subfields)
    return cls


VMLowering = element_tuple(VMLOWERING)


@lru_cache(maxsize=None)
def element_struct(etype, ptr, byte_order):
    """One `struct.Struct` that reads or writes a whole element (its sub-fields in order, holes skipped)."""
    fmt, at = BYTE_ORDER_CHAR[byte_order], 0
    for sub in sorted(etype.subfields, key=lambda s: etype.offset_of(s.name, ptr)):
        off = etype.offset_of(sub.name, ptr)
        fmt += "x" * (off - at) + ("Q" if sub.kind == "ptr" and int(ptr) == 8 else "I" if sub.kind != "i32" else "i")
        at = off + sub.width(ptr)
    return struct.Struct(fmt)


def _getter(field):
    """The runtime getter of `field`'s elements, as the release's `ComponentInstance` has it.

    The per-access path is kept flat: the element's offset from a per-instance
    cache (base, size, count), one unpack of the whole element, the debug check
    on values already read. Anything unusual (a non-int index, out of range,
    closed) goes through the checked path, which raises the package's errors.
    """
    etype, accessor, name = field.elem_type, field.runtime_getter, field.name
    returns_address = etype.role_sub("vmctx") is not None
    single = len(etype.subfields) == 1
    tuple_cls = element_tuple(etype)
    new_tuple = tuple.__new__
    def geometry(self):
        region = self.offsets.region(name)
        ptr = self.ptr
        subs = sorted(etype.subfields, key=lambda s: etype.offset_of(s.name, ptr))
        position = {s.name: k for k, s in enumerate(subs)}
        order = tuple(position[s.name] for s in etype.subfields)
        checked = tuple((position[s], s, field.sub_offset(s, ptr), "slot" if single else s) for s in etype.checked)
        geo = (region.offset, region.elem_size, region.count, element_struct(etype, ptr, self.byte_order).unpack_from,
               order if order != tuple(range(len(order))) else None, checked)
        self._geometry[name] = geo
        return geo

    def checked_get(self, index):
        geo = self._geometry.get(name) or geometry(self)
        base, size, count, unpack, order, checked = geo
        if index.__class__ is int and 0 <= index < count:
            offset = base + index * size
        else:
            offset = self.offsets.element_offset(name, index)
        raw = self._raw
        if raw is None:
            raw = self._live()
        values = unpack(raw, offset)
        if checked and self.debug_assertions:
            for k, sub_name, sub_off, what in checked:
                if values[k] == self._invalid:
                    raise VMContextError(
                        f"{accessor}({index}): {what} at offset {offset + sub_off} read before it was set "
                        f"(still INVALID_PTR {values[k]:#x})"
                    )
        if returns_address:
            vmctx = self._vmctx
            if vmctx is None:
                self._live()
                raise VMContextError(f"{accessor}({index}): the context's address is unknown")
            if self._raw is None:
                self._live()
            return vmctx + offset
        if single:
            return values[0]
        if order is not None:
            values = tuple(values[k] for k in order)
        return new_tuple(tuple_cls, values)

    # The short paths: a live context, its geometry cached, a plain in-range int, and (debug) every
    # checked slot set; anything else is `checked_get`'s, which raises or converts. In the host's
    # byte order the words are read through a cached memoryview of ints (no struct, no tuple).
    any_checked = bool(etype.checked)
    attr = f"_fast_{accessor}"  # the instance's geometry for this getter, dropped by close()
    subs = etype.subfields

    def fast_geometry(self):
        ptr, region = self.ptr, self.offsets.region(name)
        widths = [int(ptr) if s.kind == "ptr" else 4 for s in subs]
        starts = [region.offset + field.sub_offset(s.name, ptr) for s in subs]
        if (self.byte_order == sys.byteorder and len(set(widths)) == 1 and all(s.kind != "i32" for s in subs)
                and all(x % widths[0] == 0 for x in starts + [region.elem_size])):
            raw, w = self._raw, widths[0]
            view = raw[: len(raw) - len(raw) % w].cast("Q" if w == 8 else "I")
            geo = (region.count, view, region.elem_size // w, *[x // w for x in starts])
        else:
            geo = None
        setattr(self, attr, geo)

    if returns_address:
        get = checked_get
    elif single:
        def get(self, index):
            try:
                count, view, stride, start = getattr(self, attr)
            except (AttributeError, TypeError):
                if self._raw is not None and not hasattr(self, attr):
                    fast_geometry(self)
                return checked_get(self, index)
            # The geometry exists only while the context is live: close() drops it.
            if index.__class__ is not int or not 0 <= index < count:
                return checked_get(self, index)
            value = view[start + index * stride]
            if any_checked and value == self._invalid and self.debug_assertions:
                return checked_get(self, index)
            return value
    elif len(subs) == 2:
        def get(self, index):
            try:
                count, view, stride, first, second = getattr(self, attr)
            except (AttributeError, TypeError):
                if self._raw is not None and not hasattr(self, attr):
                    fast_geometry(self)
                return checked_get(self, index)
            if index.__class__ is not int or not 0 <= index < count:
                return checked_get(self, index)
            at = index * stride
            values = (view[first + at], view[second + at])
            if any_checked and self._invalid in values and self.debug_assertions:
                return checked_get(self, index)
            return new_tuple(tuple_cls, values)
    else:
        get = checked_get

    get.__name__ = accessor
    get.__doc__ = (f"`{accessor}(index)`: "
                   + ("the address of the element" if returns_address
                      else "the element's value") + f" ({etype.rust_name}); debug builds assert "
                   + " and ".join(etype.checked) + " are no longer INVALID_PTR.")
    return get


def runtime_getters(layout):
    """Getter name -> function for every field of `layout` that its runtime setters write."""
    out = {}
    for s in layout.setters:
        for name in s.fields:
            field = layout.field(name)
            out[field.runtime_getter] = _getter(field)
    return out


@lru_cache(maxsize=None)
def with_runtime(base, layout, extra):
    """`base` plus `layout`'s runtime methods (getters, and `extra(layout)`'s setters)."""
    namespace = {"__module__": base.__module__, "__doc__": base.__doc__, "LAYOUT": layout,
                 "_flags_class": flags_class(layout, writable=base._flags_writable)}
    namespace.update(runtime_getters(layout))
    if extra is not None:
        namespace.update(extra(layout))
    return type(base.__name__, (base,), namespace)


class ContextReader:
    """Getters with the Rust names over `_raw` (a 'B' memoryview), for one target layout."""

    _raw = None
    _vmctx = None
    LAYOUT = None
    _flags_writable = False
    _setters_for = None  # layout -> {name: setter function}; None on read-only contexts

    def _set_target(self, component, ptr, byte_order, debug_assertions, wasmtime=None):
        resolution = resolve_wasmtime(wasmtime)
        self.layout = resolution.layout
        self.wasmtime = resolution.version  # as resolved: "21.0.2" for "21"; "48.0.11", a patch the table lacks
        self.release = resolution.release  # the table's release that stands for it: "48.0.10"
        if type(self).LAYOUT is not self.layout:
            self.__class__ = with_runtime(type(self), self.layout, type(self)._setters_for)
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
        if not isinstance(debug_assertions, bool):
            raise ArgumentTypeError(f"debug_assertions must be a bool, got {debug_assertions!r}")
        self.debug_assertions = debug_assertions
        self.offsets = self.layout.offsets_class(ptr, component)
        self._flags_field = self.layout.flags_field()
        self.is_host_layout = ptr == HostPtr and byte_order == sys.byteorder
        order = BYTE_ORDER_CHAR[byte_order]
        self._ptr_word = struct.Struct(order + ("Q" if ptr == 8 else "I"))
        self._u32 = struct.Struct(order + "I")
        self._i32 = struct.Struct(order + "i")
        self._invalid = invalid_ptr(ptr)
        self._geometry = {}  # field name -> what its getter and setter need per access (see `_getter`)

    def _check_ptr(self, what, value):
        return check_ptr(what, value, self.ptr)

    def _fields(self):
        for field in self.layout.declared_fields():
            yield field, self.offsets.region(field.name)

    def _sub_offset(self, field, sub):
        return field.sub_offset(sub, self.ptr)

    def _forget_geometry(self):
        """Drop every cached geometry (its memoryviews would keep closed memory alive)."""
        self._geometry = {}
        for name in [n for n in vars(self) if n.startswith("_fast_")]:
            delattr(self, name)

    def _live(self):
        raw = self._raw
        if raw is None:
            raise ClosedError(f"this {type(self).__name__} is closed")
        return raw

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
        """Raise `VMContextError` unless the u32 at offset 0 is `VMCOMPONENT_MAGIC`."""
        raw = self._live()[:4]
        if self._u32.unpack_from(raw)[0] != VMCOMPONENT_MAGIC:
            raise VMContextError(magic_mismatch_message(self.vmctx, raw, self.byte_order, self.ptr))

    def _load(self, offset):
        return self._ptr_word.unpack_from(self._live(), offset)[0]

    def _load_kind(self, kind, offset):
        word = self._ptr_word if kind == "ptr" else self._u32 if kind == "u32" else self._i32
        return word.unpack_from(self._live(), offset)[0]

    def _check_set(self, accessor, index, offset, what="slot"):
        """Debug builds: a getter's slot must no longer hold INVALID_PTR."""
        value = self._load(offset)
        if self.debug_assertions and value == self._invalid:
            raise VMContextError(
                f"{accessor}({index}): {what} at offset {offset} read before it was set "
                f"(still INVALID_PTR {value:#x})"
            )
        return value

    # -- getters that are not per-field ---------------------------------

    def store(self):
        """The store fat pointer as (data, vtable); a null store fails like Rust's `assert!`."""
        if not hasattr(self.offsets, "store"):
            raise VMContextError(f"store() does not exist in {self.layout.name}: the store pointer "
                                 "left the context at v30")
        offset = self.offsets.store()
        data, vtable = self._load(offset), self._load(offset + int(self.ptr))
        if data == 0:
            raise VMContextError(f"store(): the store pointer at offset {offset} is null")
        return (data, vtable)

    def instance_flags(self, index):
        """The flag global of component instance `index` (`may_leave` from v47)."""
        if self._raw is None:
            self._live()  # closed: that, before any complaint about the index
        offset = self.offsets.element_offset(self._flags_field.name, index)
        return self._flags_class(self, offset, index, self.byte_order)
