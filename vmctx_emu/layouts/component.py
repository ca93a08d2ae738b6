"""The component shape: the `u32` counts that size a `VMComponentContext`, one class per release."""

from functools import lru_cache

from ..checks import check_u32
from .record import Record

__all__ = ["component_class"]


class _Counts(Record):
    """Validation and `counts()` shared by every release's component class."""

    LAYOUT = None

    def __post_init__(self):
        for name in self._fields:
            self.__dict__[name] = check_u32(name, self.__dict__[name])

    def counts(self):
        """The counts as a dict keyed by their Rust names."""
        return dict(zip(self._fields, self._values()))


@lru_cache(maxsize=None)
def component_class(layout):
    """The immutable counts class of `layout`: its `count_names`, each a `u32` defaulting to 0."""
    namespace = {"__module__": __name__, "LAYOUT": layout,
                 "__doc__": f"The counts of Wasmtime's `Component` that {layout.name} `VMComponentOffsets::new` reads.",
                 "__annotations__": dict.fromkeys(layout.count_names, int), **dict.fromkeys(layout.count_names, 0)}
    return type("Component" + layout.class_suffix, (_Counts,), namespace)
