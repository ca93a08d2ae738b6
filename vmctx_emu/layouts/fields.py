"""The vocabulary a release's layout is declared in, and the checked cursor that lays it out.

`Field`/`Align` are the entries of Wasmtime's `fields!` / `for_each_vmctx_type!`
list; `Header` names a value `initialize_vmctx` copies in; `Setter` is one
runtime setter with its Rust arguments in order. `lay_out` walks the entries
with Rust's `cmul` / `checked_add` / `align` arithmetic.
"""

import functools

from ..errors import LayoutOverflowError
from .record import Record
from .types import resolve

__all__ = ["Field", "Align", "Header", "SetterArg", "Setter", "setter", "Region", "lay_out", "U32_MAX"]

U32_MAX = (1 << 32) - 1


class Header(Record):
    """A value the caller supplies to `initialize_vmctx`: `header[name]`, or its `part` of a pair."""

    name: str
    part: int = None


class Field(Record):
    """`size(name) = count * elem_type.size`; `count` is a component count name or None (one).

    `base` is the Rust accessor returning the region's offset, `element`
    the one taking an index, `array` (v49+) the one returning `ArrayOffsets`
    (all optional, as in Rust); `subfield_accessors` is a prefix asking for
    `<prefix>_<sub>(i)`, `<prefix>_<sub>_offset()` and `<prefix>_size()`. `init` pairs a sub-field with what `initialize_vmctx`
    writes into every element (an int, or a `Header`); `poison` names the
    sub-fields a debug build fills with `INVALID_PTR`.
    """

    name: str
    elem_type: object
    count: str = None
    base: str = None
    element: str = None
    array: str = None
    subfield_accessors: str = None
    init: tuple = ()
    poison: tuple = ()
    getter: str = None

    @property
    def runtime_getter(self):
        """The `ComponentInstance` getter of one element: `getter`, else the element accessor's name."""
        return self.getter or self.element

    @property
    def index_accessor(self):
        """How an indexed access is named in errors: `lowering` or `lowerings().at`."""
        return self.element or f"{self.array}().at"

    @property
    def offset_stored(self):
        """Whether Rust's `VMComponentOffsets` keeps this field's offset as a member (the copy a
        `ComponentInstance` stores); v49+'s header offsets are constants, with no accessor declared here."""
        return bool(self.base or self.element or self.array)

    def header_name(self):
        """The caller-supplied header value this field is initialized from, if any."""
        return next((v.name for _, v in self.init if isinstance(v, Header)), None)

    def sub_offset(self, sub, ptr):
        return self.elem_type.offset_of(sub, ptr)


class Align(Record):
    """`align(n)`: round the cursor up to `n` (an int or `PTR`), a power of two."""

    to: object


NULL_RULES = ("never", "debug", "allowed")


class SetterArg(Record):
    """One Rust argument of a setter: it fills `subs` of one element of field `field`.

    `null` overrides the sub-fields' own rule where the argument's Rust type is
    stricter than the slot's (`wasm_call: NonNull<_>` into an `Option` slot).
    """

    name: str
    field: str
    subs: tuple
    null: str = None


class Setter(Record):
    """A `ComponentInstance` setter: `name(index, *args)` writes one element of each field it names.

    Sub-fields with the role "vmctx" in an element it writes get the
    context's own address. In debug builds the sub-fields in `asserts`
    (`(field, sub)` pairs; by default every poisoned sub-field it writes)
    must still hold `INVALID_PTR`: set once only.
    """

    name: str
    args: tuple
    asserts: tuple = None

    @property
    def fields(self):
        """The fields written, in argument order, without repeats."""
        return tuple(dict.fromkeys(a.field for a in self.args))


def setter(name, asserts=None, **args):
    """`setter("set_lowering", lowering=("lowerings", "callee", "data"), ...)`: keyword order is Rust's.

    A target may end with a null rule (`"never"`) for the argument as a whole.
    """
    def arg(arg_name, target):
        null = target[-1] if target[-1] in NULL_RULES else None
        subs = target[1:-1] if null else target[1:]
        return SetterArg(arg_name, target[0], tuple(subs), null)

    return Setter(name, tuple(arg(a, t) for a, t in args.items()), asserts)


class Region(Record):
    """Where one declared field landed: `padding_before` is the hole `align` left in front of it."""

    name: str
    offset: int
    size: int
    elem_type: str
    elem_size: int
    count: int
    count_name: str
    align: int
    padding_before: int

    @property
    def end(self):
        return self.offset + self.size

    def to_dict(self):
        return {
            "name": self.name,
            "offset": self.offset,
            "size": self.size,
            "elem_type": self.elem_type,
            "elem_size": self.elem_size,
            "count": self.count,
            "count_name": self.count_name,
            "align": self.align,
            "padding_before": self.padding_before,
        }


def _checked_mul(field, count_name, count, elem_size):
    product = count * elem_size
    if product > U32_MAX:
        raise LayoutOverflowError(
            f"size of {field}: {count_name}={count} * {elem_size} bytes = {product} "
            f"overflows u32 (checked_mul)"
        )
    return product


def _checked_add(field, offset, size):
    end = offset + size
    if end > U32_MAX:
        raise LayoutOverflowError(
            f"end of {field}: offset {offset} + size {size} = {end} overflows u32 (checked_add)"
        )
    return end


def _align(next_field, offset, to):
    # Rust asserts the power of two and adds `to - 1` in plain u32 arithmetic,
    # which panics on overflow in a debug build.
    if to <= 0 or to & (to - 1):
        raise LayoutOverflowError(f"align({to}) before {next_field}: not a power of two")
    bumped = offset + (to - 1)
    if bumped > U32_MAX:
        raise LayoutOverflowError(
            f"align({to}) before {next_field}: offset {offset} + {to - 1} overflows u32"
        )
    return bumped & ~(to - 1)


def lay_out(fields, ptr, counts):
    """Walk `fields` like the `fields!` macro; return (regions, total size).

    `counts` maps count names to u32 values; `ptr` is a validated `PtrSize`.
    Cached per shape: every instance, reader and scan candidate of one shape
    shares its regions (they are immutable).
    """
    return _lay_out(tuple(fields), ptr, tuple(counts.items()))


@functools.lru_cache(maxsize=1024)
def _lay_out(fields, ptr, count_items):
    counts = dict(count_items)
    regions = []
    cursor = 0
    hole = 0
    for i, entry in enumerate(fields):
        if isinstance(entry, Align):
            following = next((f.name for f in fields[i + 1 :] if isinstance(f, Field)), "end")
            aligned = _align(following, cursor, resolve(entry.to, ptr))
            hole += aligned - cursor
            cursor = aligned
            continue
        elem_size = entry.elem_type.size_for(ptr)
        count = 1 if entry.count is None else counts[entry.count]
        size = _checked_mul(entry.name, entry.count or "count", count, elem_size)
        regions.append(
            Region(
                name=entry.name,
                offset=cursor,
                size=size,
                elem_type=entry.elem_type.rust_name,
                elem_size=elem_size,
                count=count,
                count_name=entry.count,
                align=entry.elem_type.align_for(ptr),
                padding_before=hole,
            )
        )
        cursor = _checked_add(entry.name, cursor, size)
        hole = 0
    return tuple(regions), cursor
