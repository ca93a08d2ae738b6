"""`VMComponentOffsets`: the Rust type's methods, generated from the layout declaration."""

import operator

from .component import COUNT_NAMES
from ..errors import ComponentIndexError, InvalidPtrSizeError
from .fields import SEED_FIELDS, Field, lay_out
from .ptr import VALID_PTR_SIZES, as_ptr_size
from .types import resolve

__all__ = ["VMComponentOffsets", "make_offsets_class"]


def _index(accessor, count_name, count, index):
    """`index` as an int the Rust `assert!(index < count)` accepts, else `ComponentIndexError`."""
    if isinstance(index, bool):
        raise TypeError(f"{accessor} index must be an int, got bool {index!r}")
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(
            f"{accessor} index must be an int, got {type(index).__name__} {index!r}"
        ) from None
    if not 0 <= i < count:
        raise ComponentIndexError(
            f"{accessor} index {i} out of range ({count_name}={count})"
        )
    return i


def _base_accessor(name):
    def accessor(self):
        return self._region_offsets[name]

    return accessor


def _element_accessor(field, accessor_name, extra=None):
    name, count_name = field.name, field.count
    sub = extra

    def accessor(self, index):
        count = getattr(self, count_name)
        i = _index(accessor_name, count_name, count, index)
        offset = self._region_offsets[name] + i * self._elem_sizes[name]
        return offset if sub is None else offset + resolve(sub.offset, self.ptr)

    return accessor


def _constant(fn):
    def accessor(self):
        return fn(self.ptr)

    return accessor


def _accessors(fields):
    """Every method name → function the Rust `VMComponentOffsets` has for `fields`."""
    methods = {}
    for field in fields:
        if not isinstance(field, Field):
            continue
        if field.base:
            methods[field.base] = _base_accessor(field.name)
        if field.element:
            methods[field.element] = _element_accessor(field, field.element)
        if field.subfield_accessors:
            etype = field.elem_type
            methods[f"{field.element}_size"] = _constant(etype.size_for)
            for sub in etype.subfields:
                methods[f"{field.element}_{sub.name}"] = _element_accessor(
                    field, f"{field.element}_{sub.name}", sub
                )
                methods[f"{field.element}_{sub.name}_offset"] = _constant(
                    lambda ptr, spec=sub.offset: resolve(spec, ptr)
                )
    return methods


class _OffsetsBase:
    """Shared state and the methods that do not depend on the field list."""

    FIELDS = ()
    COUNT_NAMES = ()
    VALID_PTR_SIZES = VALID_PTR_SIZES
    LAYOUT = None

    def __init__(self, ptr, component):
        self.ptr = as_ptr_size(ptr)
        if int(self.ptr) not in self.VALID_PTR_SIZES:
            raise InvalidPtrSizeError(
                f"pointer size {int(self.ptr)} is not supported by {self.LAYOUT.range_text}: its u8 "
                f"PtrSize arithmetic allows only {', '.join(map(str, self.VALID_PTR_SIZES))}"
            )
        missing = [n for n in self.COUNT_NAMES if not hasattr(component, n)]
        if missing or not hasattr(component, "counts"):
            raise TypeError(
                f"component must have the counts {', '.join(self.COUNT_NAMES)}; "
                f"{type(component).__name__} lacks {', '.join(missing) or 'counts()'}"
            )
        self.component = component
        for name in self.COUNT_NAMES:
            setattr(self, name, getattr(component, name))
        regions, size = lay_out(self.FIELDS, self.ptr, {n: getattr(component, n) for n in self.COUNT_NAMES})
        # Required by `from_opaque`, which reads the magic at a fixed offset 0.
        if regions[0].name != "magic" or regions[0].offset != 0:
            raise AssertionError("layout declaration must start with the magic at offset 0")
        self._regions = regions
        self._region_offsets = {r.name: r.offset for r in regions}
        self._elem_sizes = {r.name: r.elem_size for r in regions}
        self._size = size

    def __repr__(self):
        counts = ", ".join(f"{n}={getattr(self, n)}" for n in self.COUNT_NAMES)
        return f"{type(self).__name__}(ptr={int(self.ptr)}, {counts})"

    def pointer_size(self):
        return int(self.ptr)

    def size_of_vmctx(self):
        return self._size

    def regions(self):
        """The laid-out regions in declaration order."""
        return list(self._regions)

    def region(self, name):
        for r in self._regions:
            if r.name == name:
                return r
        raise KeyError(f"no region named {name!r}; regions: {', '.join(r.name for r in self._regions)}")


def make_offsets_class(name, fields, count_names, methods=None, valid_ptr_sizes=VALID_PTR_SIZES, layout=None):
    """A `VMComponentOffsets`-like class whose accessors come from `fields`.

    `methods` adds constant accessors (`name -> PtrUnits`), such as a
    release's `size_of_vmtable`.
    """
    namespace = {"FIELDS": tuple(fields), "COUNT_NAMES": tuple(count_names),
                 "VALID_PTR_SIZES": tuple(valid_ptr_sizes), "LAYOUT": layout}
    namespace.update(_accessors(fields))
    for method, spec in (methods or {}).items():
        namespace[method] = _constant(lambda ptr, spec=spec: resolve(spec, ptr))
    return type(name, (_OffsetsBase,), namespace)


def _seed_layout():
    from .releases import SEED

    return SEED


VMComponentOffsets = make_offsets_class("VMComponentOffsets", SEED_FIELDS, COUNT_NAMES, layout=_seed_layout())
VMComponentOffsets.__doc__ = """Offsets of every field of a `VMComponentContext` (seed layout).

`VMComponentOffsets(ptr, component)` with `ptr` an int or `HostPtr`; the
methods and attributes are those of the Rust type, with the same results.
"""
