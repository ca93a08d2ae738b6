"""`VMComponentOffsets`: each release's Rust methods, generated from its declaration."""

from functools import lru_cache

from ..checks import check_index
from ..errors import InvalidPtrSizeError, LayoutError, UnknownRegionError
from .fields import lay_out
from .ptr import as_ptr_size
from .types import resolve

__all__ = ["OffsetsBase", "offsets_class"]


def _base_accessor(name):
    def accessor(self):
        return self._region_offsets[name]

    return accessor


def _element_accessor(field, accessor_name, sub=None):
    name, count_name = field.name, field.count

    def accessor(self, index):
        i = check_index(accessor_name, count_name, getattr(self, count_name), index)
        offset = self._region_offsets[name] + i * self._elem_sizes[name]
        return offset if sub is None else offset + field.sub_offset(sub, self.ptr)

    return accessor


class ArrayOffsets:
    """v49+ `ArrayOffsets`: `begin()`, `stride()`, `count()`, and `at(i)` asserting `i < count`."""

    __slots__ = ("_begin", "_stride", "_count", "_what")

    def __init__(self, begin, stride, count, what):
        self._begin, self._stride, self._count, self._what = begin, stride, count, what

    def begin(self):
        return self._begin

    def stride(self):
        return self._stride

    def count(self):
        return self._count

    def at(self, index):
        i = check_index(f"{self._what}().at", "count", self._count, index)
        return self._begin + i * self._stride

    def __repr__(self):
        return f"ArrayOffsets(begin={self._begin}, stride={self._stride}, count={self._count})"


def _array_accessor(field):
    name = field.name

    def accessor(self):
        region = self._by_name[name]
        return ArrayOffsets(region.offset, region.elem_size, region.count, field.array)

    return accessor


def _constant(fn):
    def accessor(self):
        return fn(self.ptr)

    return accessor


def _accessors(fields):
    """Every method name -> function the Rust `VMComponentOffsets` has for `fields`."""
    methods = {}
    for field in fields:
        if field.base:
            methods[field.base] = _base_accessor(field.name)
        if field.element:
            methods[field.element] = _element_accessor(field, field.element)
        if field.array:
            methods[field.array] = _array_accessor(field)
        prefix = field.subfield_accessors
        if prefix:
            etype = field.elem_type
            methods[f"{prefix}_size"] = _constant(etype.size_for)
            for sub in etype.subfields:
                methods[f"{prefix}_{sub.name}"] = _element_accessor(field, f"{prefix}_{sub.name}", sub.name)
                methods[f"{prefix}_{sub.name}_offset"] = _constant(
                    lambda ptr, etype=etype, name=sub.name: etype.offset_of(name, ptr))
    return methods


class OffsetsBase:
    """The base of every release's `VMComponentOffsets` class: shared state and the methods that do not depend on
    the field list."""

    LAYOUT = None

    def __init__(self, ptr, component):
        layout = self.LAYOUT
        self.ptr = as_ptr_size(ptr)
        if int(self.ptr) not in layout.valid_ptr_sizes:
            raise InvalidPtrSizeError(
                f"pointer size {int(self.ptr)} is not supported by {layout.range_text}: its u8 "
                f"PtrSize arithmetic allows only {', '.join(map(str, layout.valid_ptr_sizes))}"
            )
        if not isinstance(component, layout.component_class):
            raise LayoutError(
                f"component must be {layout.name}'s counts ({', '.join(layout.count_names)}), "
                f"got {type(component).__name__}"
            )
        self.component = component
        counts = component.counts()
        for name, value in counts.items():
            setattr(self, name, value)
        regions, size = lay_out(layout.fields, self.ptr, counts)
        # Required by `from_opaque`, which reads the magic at a fixed offset 0.
        if regions[0].name != "magic" or regions[0].offset != 0:
            raise LayoutError("layout declaration must start with the magic at offset 0")
        self._regions = regions
        self._by_name = {r.name: r for r in regions}
        self._region_offsets = {r.name: r.offset for r in regions}
        self._elem_sizes = {r.name: r.elem_size for r in regions}
        self._size = size

    @property
    def FIELDS(self):
        return self.LAYOUT.fields

    @property
    def COUNT_NAMES(self):
        return self.LAYOUT.count_names

    def __repr__(self):
        counts = ", ".join(f"{n}={getattr(self, n)}" for n in self.LAYOUT.count_names)
        return f"{type(self).__name__}(ptr={int(self.ptr)}, {counts})"

    def pointer_size(self):
        return int(self.ptr)

    def size_of_vmctx(self):
        return self._size

    def regions(self):
        """The laid-out regions in declaration order."""
        return list(self._regions)

    def region(self, name):
        r = self._by_name.get(name)
        if r is None:
            raise UnknownRegionError(f"no region named {name!r} in {self.LAYOUT.name}; "
                              f"regions: {', '.join(r.name for r in self._regions)}")
        return r

    def element_offset(self, name, index):
        """Offset of element `index` of region `name`, index-checked as its Rust accessor is."""
        r = self.region(name)
        field = self.LAYOUT.field(name)
        i = check_index(field.index_accessor, r.count_name, r.count, index)
        return r.offset + i * r.elem_size


@lru_cache(maxsize=None)
def offsets_class(layout):
    """A `VMComponentOffsets` class whose accessors come from `layout`'s fields and `methods`."""
    namespace = {"LAYOUT": layout, "__module__": __name__,
                 "__doc__": f"Offsets of every field of a `VMComponentContext` ({layout.name}).\n\n"
                            "`VMComponentOffsets(ptr, component)` with `ptr` an int or `HostPtr`; the "
                            "methods and attributes are those of the Rust type, with the same results."}
    namespace.update(_accessors(layout.declared_fields()))
    for method, spec in layout.methods.items():
        namespace[method] = _constant(lambda ptr, spec=spec: resolve(spec, ptr))
    return type("VMComponentOffsets", (OffsetsBase,), namespace)
