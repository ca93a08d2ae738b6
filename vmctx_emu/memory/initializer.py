"""`initialize_vmctx` as data: the strided stores a release's initializer does, derived from its declaration.

Python (`OwnedComponentInstance`) and C (`vmctx_c_alloc_init`) apply the same
plan, so the C initializer follows every release without knowing any layout.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ArgumentTypeError, ArgumentValueError, LayoutError
from ..layouts.fields import Header
from ..layouts.offsets import OffsetsBase
from ..checks import check_bool, check_ptr
from ..layouts.ptr import invalid_ptr

__all__ = ["Fill", "check_header", "check_offsets", "initial_fills", "fills_for"]


@dataclass(frozen=True)
class Fill:
    """`count` stores of `value` as a `width`-byte word at `offset`, `offset + stride`, ...

    `field`/`sub` name the declared sub-field, so errors can say what was being written.
    """

    field: str
    sub: str
    offset: int
    count: int
    stride: int
    width: int
    value: int

    @property
    def end(self):
        """One past the last byte written (for count > 0)."""
        return self.offset + (self.count - 1) * self.stride + self.width


def check_header(layout, ptr, store, header):
    """Every header pointer `layout`'s `initialize_vmctx` writes, checked as pointers of `ptr` bytes.

    `store=` fills the `store` header. Every header must be given, except
    those the layout declares a default for (`header_defaults`: the seed's
    null store), however the layout was asked for.
    """
    names = layout.header_names()
    if header is not None and not isinstance(header, Mapping):
        raise ArgumentTypeError(f"header must be a mapping of header name to pointer, got "
                                f"{type(header).__name__} {header!r}")
    given = dict(header or {})
    unknown = sorted(map(str, set(given) - set(names)))
    if unknown:
        raise ArgumentValueError(f"header {', '.join(unknown)} is not written by {layout.name}; "
                                 f"its header pointers are: {', '.join(names)}")
    if store is not None:
        if "store" not in names:
            raise ArgumentValueError(f"{layout.name} has no store pointer (removed at v30)")
        if "store" in given and tuple(given["store"]) != tuple(store):
            raise ArgumentValueError("store given twice, as store= and header['store'], with different values")
        given["store"] = store
    for name, value in layout.header_defaults:
        given.setdefault(name, value)
    missing = [n for n in names if n not in given]
    if missing:
        raise ArgumentValueError(f"header value missing for {', '.join(missing)}: {layout.name} "
                                 f"writes {', '.join(names)} at initialization")
    checked = {}
    for name, value in given.items():
        if name == "store":
            try:
                data, vtable = value
            except (TypeError, ValueError):
                raise ArgumentTypeError(f"store must be a (data_ptr, vtable_ptr) pair, got {value!r}") from None
            checked[name] = (check_ptr("store data pointer", data, ptr),
                             check_ptr("store vtable pointer", vtable, ptr))
        else:
            checked[name] = check_ptr(f"header {name}", value, ptr)
    return checked


def initial_fills(layout, offsets, header, debug_assertions):
    """Every store `initialize_vmctx` does for `layout`, in its order; empty regions are skipped.

    Per field: its `init` values (a `Header` resolved from the checked
    `header`), then, in debug builds, `INVALID_PTR` into its `poison` sub-fields.
    """
    if type(offsets).LAYOUT is not layout:
        raise LayoutError(f"offsets are {type(offsets).LAYOUT.name}'s, not {layout.name}'s")
    for fill in _plan(layout, offsets.ptr, tuple(offsets.component.counts().items()), debug_assertions):
        value = fill.value
        if isinstance(value, Header):
            value = header[value.name] if value.part is None else header[value.name][value.part]
            fill = Fill(fill.field, fill.sub, fill.offset, fill.count, fill.stride, fill.width, value)
        yield fill


@functools.lru_cache(maxsize=256)
def _plan(layout, ptr, count_items, debug_assertions):
    """The fills of one shape, headers still unresolved: every instance of that shape shares them."""
    offsets = layout.offsets(ptr, **dict(count_items))
    plan = []
    for field in layout.declared_fields():
        region = offsets.region(field.name)
        if not region.count:
            continue
        etype = field.elem_type

        def fill(sub, value):
            return Fill(field.name, sub, region.offset + field.sub_offset(sub, ptr), region.count,
                        region.elem_size, etype.sub(sub).width(ptr), value)

        plan.extend(fill(sub, value) for sub, value in field.init)
        if debug_assertions:
            plan.extend(fill(sub, invalid_ptr(ptr)) for sub in field.poison)
    return tuple(plan)


def check_offsets(offsets):
    """`offsets` must be some release's `VMComponentOffsets`: it carries the layout, pointer size and counts."""
    if not isinstance(offsets, OffsetsBase):
        raise ArgumentTypeError(f"offsets must be a VMComponentOffsets, got {type(offsets).__name__}")
    return offsets


def fills_for(offsets, store=None, *, header=None, debug_assertions=True):
    """The whole plan for `offsets` (any release's `VMComponentOffsets`), headers checked.

    As with `OwnedComponentInstance`, only the seed defaults its store to null
    (`header_defaults`); every other release needs all of its header pointers.
    """
    check_offsets(offsets)
    check_bool("debug_assertions", debug_assertions)
    layout = offsets.LAYOUT
    checked = check_header(layout, offsets.ptr, store, header)
    return list(initial_fills(layout, offsets, checked, debug_assertions))
