"""The component shape: the `u32` counts that size a `VMComponentContext`, one class per release."""

from dataclasses import field, fields, make_dataclass
from functools import lru_cache

from ..checks import check_u32

__all__ = ["component_class"]


class _Counts:
    """Validation and `counts()` shared by every release's component class."""

    LAYOUT = None

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check_u32(f.name, getattr(self, f.name)))

    def counts(self):
        """The counts as a dict keyed by their Rust names."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=None)
def component_class(layout):
    """The immutable counts class of `layout`: its `count_names`, each a `u32` defaulting to 0."""
    cls = make_dataclass("Component" + layout.class_suffix, [(n, int, field(default=0)) for n in layout.count_names], bases=(_Counts,),
                         frozen=True)
    cls.__module__ = __name__
    cls.LAYOUT = layout
    cls.__doc__ = f"The counts of Wasmtime's `Component` that {layout.name} `VMComponentOffsets::new` reads."
    return cls
