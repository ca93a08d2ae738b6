"""The component shape: the `u32` counts that size a `VMComponentContext`."""

from dataclasses import dataclass, field, fields, make_dataclass

from ..errors import ComponentValueError

__all__ = ["Component", "COUNT_NAMES", "check_u32", "make_component_class"]

U32_LIMIT = 1 << 32


def check_u32(what, value):
    """`value` as an int in [0, 2**32), else `ComponentValueError` naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ComponentValueError(
            f"{what} must be an int in [0, 2**32), got {type(value).__name__} {value!r}"
        )
    if not 0 <= value < U32_LIMIT:
        raise ComponentValueError(f"{what} must be in [0, 2**32) (a u32), got {value}")
    return int(value)


class _Counts:
    """Validation and `counts()` shared by every release's component class."""

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check_u32(f.name, getattr(self, f.name)))

    def counts(self):
        """The counts as a dict keyed by their Rust names."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Component(_Counts):
    """The counts of Wasmtime's `Component` that the seed's `VMComponentOffsets::new` reads."""

    num_lowerings: int = 0
    num_runtime_memories: int = 0
    num_runtime_reallocs: int = 0
    num_runtime_post_returns: int = 0
    num_runtime_component_instances: int = 0
    num_always_trap: int = 0


COUNT_NAMES = tuple(f.name for f in fields(Component))


def make_component_class(name, count_names):
    """An immutable component class with these `u32` counts (default 0), validated like `Component`."""
    cls = make_dataclass(name, [(n, int, field(default=0)) for n in count_names], bases=(_Counts,),
                         frozen=True)
    cls.__module__ = __name__
    return cls
