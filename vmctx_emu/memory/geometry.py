"""Where every sub-field of every field lies, per (layout, pointer size, byte order): one plain table.

`geometry(layout, ptr, byte_order)` is built once per triple and cached. For
each declared field it holds the stride (the element's size) and, per
sub-field, its offset in the element, its width and a `struct.Struct`; one
more `struct.Struct` reads or writes a whole element (its sub-fields in
memory order, holes skipped). For each runtime getter and setter of the
release it holds what that accessor reads or writes, under its Rust name.

Where a region starts, and how many elements it has, depends on the
component's counts: that is the offsets object's (`region(name)`); this
table is everything else. `ContextReader.get` and
`OwnedComponentInstance.set` read it; the Rust-named accessors are thin
wrappers over those two.
"""

import keyword
import struct
from collections import namedtuple
from functools import lru_cache

from ..checks import BYTE_ORDER_CHAR, hex_repr
from ..layouts.ptr import invalid_ptr

__all__ = ["Geometry", "FieldGeometry", "Sub", "Getter", "Setter", "SetterArg", "geometry", "attr_name",
           "element_tuple"]


def attr_name(sub_name):
    """A sub-field's Python attribute name: `from` is a keyword, so `from_`."""
    return sub_name + "_" if keyword.iskeyword(sub_name) else sub_name


@lru_cache(maxsize=None)
def element_tuple(etype):
    """The namedtuple a getter returns for a multi-word element (`VMLowering(callee, data)`)."""
    name = etype.rust_name if etype.rust_name.isidentifier() else etype.c_name
    base = namedtuple(name, [attr_name(s.name) for s in etype.subfields])
    pointers = frozenset(attr_name(s.name) for s in etype.subfields if s.kind == "ptr")
    cls = type(name, (base,), {"__slots__": (), "__repr__": lambda self: hex_repr(self, pointers)})
    cls.__doc__ = f"A `{etype.rust_name}`: " + ", ".join(f"{s.name} ({s.kind})" for s in etype.subfields)
    return cls


# One scalar of an element: `offset` in the element, `width` bytes, read and written with `word`.
Sub = namedtuple("Sub", "name kind role offset width word null")

# One declared field: `stride` bytes per element; `subs` in declaration order; `element` packs a whole
# element, its values in memory order (`memory_order[k]` is the position of `subs[k]` in it).
FieldGeometry = namedtuple("FieldGeometry", "name field stride subs element memory_order")

# A runtime getter (`lowering(i)`): the field it reads, the sub-fields a debug build asserts are set,
# whether it returns the element's address (a func ref) rather than its value, and the value's tuple.
Getter = namedtuple("Getter", "name field checked returns_address value_tuple")

# One Rust argument of a setter: the sub-fields it fills in field `fields[field]`, the null rule of
# each, how errors name each part ("lowering.callee"), and the namedtuple that may carry a struct.
SetterArg = namedtuple("SetterArg", "name field subs nulls labels value_tuple")

# A runtime setter (`set_lowering(i, ...)`): the fields it writes (one element each), its arguments in
# Rust order, the (field, sub, label) a debug build asserts still hold INVALID_PTR, the (field, sub)
# that get the context's own address, its signature for errors, and whether it is `one_word`: one
# scalar into the one slot it asserts unset (`set_runtime_memory` and most others).
Setter = namedtuple("Setter", "name fields args asserts own_vmctx signature one_word")


class Geometry:
    """The table of one (layout, pointer size, byte order): `fields`, `getters` and `setters` by name."""

    def __init__(self, layout, ptr, byte_order):
        self.layout, self.ptr, self.byte_order = layout, ptr, byte_order
        order = BYTE_ORDER_CHAR[byte_order]
        self.words = {"ptr": struct.Struct(order + ("Q" if int(ptr) == 8 else "I")),
                      "u32": struct.Struct(order + "I"), "i32": struct.Struct(order + "i")}
        self.invalid = invalid_ptr(ptr)
        self.fields = {f.name: self._field(f) for f in layout.declared_fields()}
        self.getters = {}
        self.setters = {}
        for spec in layout.setters:
            self.setters[spec.name] = self._setter(spec)
            for name in spec.fields:
                field = self.fields[name]
                self.getters[field.field.runtime_getter] = self._getter(field)
        self.getter_of = {g.field.name: g for g in self.getters.values()}

    def _field(self, field):
        etype, ptr = field.elem_type, self.ptr
        subs = tuple(Sub(s.name, s.kind, s.role, etype.offset_of(s.name, ptr), s.width(ptr), self.words[s.kind],
                         s.null) for s in etype.subfields)
        in_memory = sorted(subs, key=lambda s: s.offset)
        fmt, at = BYTE_ORDER_CHAR[self.byte_order], 0
        for s in in_memory:
            fmt += "x" * (s.offset - at) + self.words[s.kind].format[1:]
            at = s.offset + s.width
        return FieldGeometry(field.name, field, etype.size_for(ptr), subs, struct.Struct(fmt),
                             tuple(in_memory.index(s) for s in subs))

    def _getter(self, field):
        etype = field.field.elem_type
        checked = tuple(next(s for s in field.subs if s.name == name) for name in etype.checked)
        return Getter(field.field.runtime_getter, field, checked, etype.role_sub("vmctx") is not None,
                      element_tuple(etype) if len(field.subs) > 1 else None)

    def _setter(self, spec):
        fields = tuple(self.fields[name] for name in spec.fields)
        index = {f.name: k for k, f in enumerate(fields)}

        def sub(field_name, sub_name):
            return next(s for s in self.fields[field_name].subs if s.name == sub_name)

        args = []
        for arg in spec.args:
            subs = tuple(sub(arg.field, s) for s in arg.subs)
            labels = tuple(arg.name.rstrip("_") + (f".{s}" if len(arg.subs) > 1 else "") for s in arg.subs)
            value_tuple = element_tuple(self.fields[arg.field].field.elem_type)
            if value_tuple._fields != tuple(attr_name(s) for s in arg.subs):
                value_tuple = None  # the argument is part of an element: no namedtuple carries it
            args.append(SetterArg(arg.name, index[arg.field], subs, tuple(arg.null or s.null for s in subs), labels,
                                  value_tuple if len(subs) > 1 else None))
        asserts = spec.asserts or tuple((f, s) for f in spec.fields for s in self.fields[f].field.poison)
        own = tuple((index[f.name], s) for f in fields for s in f.subs if s.role == "vmctx")
        signature = f"{spec.name}(index, {', '.join(a.name.rstrip('_') for a in spec.args)})"
        one_word = (len(args) == 1 and len(args[0].subs) == 1 and not own
                    and [(index[f], sub(f, s)) for f, s in asserts] == [(args[0].field, args[0].subs[0])])
        return Setter(spec.name, fields, tuple(args),
                      tuple((index[f], sub(f, s), f"{f}.{s}") for f, s in asserts), own, signature, one_word)

    def __repr__(self):
        return f"<Geometry {self.layout.id}, ptr={int(self.ptr)}, {self.byte_order}-endian>"


@lru_cache(maxsize=None)
def geometry(layout, ptr, byte_order):
    """The geometry table of `layout` at pointer size `ptr` in `byte_order`, built once."""
    return Geometry(layout, ptr, byte_order)
