"""The component shape: the six `u32` counts that size a `VMComponentContext`."""

from dataclasses import dataclass, fields

from .errors import ComponentValueError

__all__ = ["Component", "COUNT_NAMES", "check_u32"]

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


@dataclass(frozen=True)
class Component:
    """The counts of Wasmtime's `Component` that `VMComponentOffsets::new` reads."""

    num_lowerings: int = 0
    num_runtime_memories: int = 0
    num_runtime_reallocs: int = 0
    num_runtime_post_returns: int = 0
    num_runtime_component_instances: int = 0
    num_always_trap: int = 0

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check_u32(f.name, getattr(self, f.name)))

    def counts(self):
        """The counts as a dict keyed by their Rust names."""
        return {name: getattr(self, name) for name in COUNT_NAMES}


COUNT_NAMES = tuple(f.name for f in fields(Component))
