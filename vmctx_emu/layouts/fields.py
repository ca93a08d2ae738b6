"""The single declaration of the `VMComponentContext` layout and the checked cursor that lays it out.

`SEED_FIELDS` mirrors the `fields!` list of `VMComponentOffsets::new` at Wasmtime
commit 97894bc65e entry by entry; offsets, regions, accessors, the allocator,
the decoder and the C mirror are all derived from it.
"""

from dataclasses import dataclass

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, VMCOMPONENT_MAGIC
from ..errors import LayoutOverflowError
from .types import (
    PTR,
    MAGIC_U32,
    STORE_FAT_PTR,
    VMCALLER_CHECKED_ANYFUNC,
    VMCALLER_CHECKED_ANYFUNC_PTR,
    VMGLOBAL_DEFINITION,
    VMLOWERING,
    VMMEMORY_DEFINITION_PTR,
    resolve,
)

__all__ = ["Field", "Align", "Region", "SEED_FIELDS", "lay_out"]

U32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class Field:
    """`size(name) = count * elem_type.size`; `count` is a component count name or None (one).

    `base` is the Rust accessor returning the region's offset, `element` the
    one taking an index (both optional, as in Rust), and `subfield_accessors`
    asks for `<element>_<sub>(i)`, `<element>_<sub>_offset()` and `<element>_size()`.

    Runtime facts ride along so the allocator reads them from the same list:
    `init` pairs a sub-field with what `initialize_vmctx` writes to every
    element: an int, or `(header, part)` naming a value the caller supplies
    (`("store", 0)` is the store fat pointer's data word, `("limits", None)`
    the whole `limits` pointer); `poison` names the sub-fields a debug build
    fills with `INVALID_PTR`.
    """

    name: str
    elem_type: object
    count: str = None
    base: str = None
    element: str = None
    subfield_accessors: bool = False
    init: tuple = ()
    poison: tuple = ()


    def header_name(self):
        """The caller-supplied header value this field is initialized from, if any."""
        return next((v[0] for _, v in self.init if isinstance(v, tuple)), None)


@dataclass(frozen=True)
class Align:
    """`align(n)`: round the cursor up to `n` (an int or `PTR`), a power of two."""

    to: object


SEED_FIELDS = (
    Field("magic", MAGIC_U32, base="magic", init=(("magic", VMCOMPONENT_MAGIC),)),
    Align(PTR),
    Field(
        "store",
        STORE_FAT_PTR,
        base="store",
        init=(("data", ("store", 0)), ("vtable", ("store", 1))),
    ),
    Align(16),
    Field(
        "flags",
        VMGLOBAL_DEFINITION,
        "num_runtime_component_instances",
        element="instance_flags",
        init=(("flags", FLAG_MAY_ENTER | FLAG_MAY_LEAVE),),
    ),
    Align(PTR),
    Field(
        "lowering_anyfuncs",
        VMCALLER_CHECKED_ANYFUNC,
        "num_lowerings",
        base="lowering_anyfuncs",
        element="lowering_anyfunc",
        poison=("func_ptr",),
    ),
    Field(
        "always_trap_anyfuncs",
        VMCALLER_CHECKED_ANYFUNC,
        "num_always_trap",
        base="always_trap_anyfuncs",
        element="always_trap_anyfunc",
        poison=("func_ptr",),
    ),
    Field(
        "lowerings",
        VMLOWERING,
        "num_lowerings",
        base="lowerings",
        element="lowering",
        subfield_accessors=True,
        poison=("callee", "data"),
    ),
    Field(
        "memories",
        VMMEMORY_DEFINITION_PTR,
        "num_runtime_memories",
        base="runtime_memories",
        element="runtime_memory",
        poison=("ptr",),
    ),
    Field(
        "reallocs",
        VMCALLER_CHECKED_ANYFUNC_PTR,
        "num_runtime_reallocs",
        base="runtime_reallocs",
        element="runtime_realloc",
        poison=("ptr",),
    ),
    Field(
        "post_returns",
        VMCALLER_CHECKED_ANYFUNC_PTR,
        "num_runtime_post_returns",
        base="runtime_post_returns",
        element="runtime_post_return",
        poison=("ptr",),
    ),
)


@dataclass(frozen=True)
class Region:
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
    """
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
