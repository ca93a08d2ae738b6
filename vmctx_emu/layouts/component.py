"""The component shape: the `u32` counts that size a `VMComponentContext`, one class per release."""

from dataclasses import field, fields, make_dataclass
from functools import lru_cache

from collections.abc import Mapping

from ..errors import ArgumentTypeError, ArgumentValueError, ComponentValueError

__all__ = ["check_counts", "check_u32", "component_class", "count_option"]

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


def check_counts(counts):
    """A `counts` argument (count name -> u32) as a dict; argument errors name the count and its value."""
    if not isinstance(counts, Mapping):
        raise ArgumentTypeError(f"counts must be a mapping of count name -> int, got {type(counts).__name__} "
                                f"{counts!r}")
    checked = {}
    for name, value in counts.items():
        if not isinstance(name, str):
            raise ArgumentTypeError(f"counts: names must be str, got {type(name).__name__} {name!r}")
        try:
            checked[name] = check_u32(f"counts[{name!r}]", value)
        except ComponentValueError as e:
            error = ArgumentValueError if isinstance(value, int) and not isinstance(value, bool) else ArgumentTypeError
            raise error(str(e)) from None
    return checked


def count_option(count_name):
    """The CLI option of a Rust count: num_runtime_post_returns -> post-returns, instances for component instances."""
    option = count_name.removeprefix("num_").removeprefix("runtime_").replace("_", "-")
    return "instances" if option == "component-instances" else option


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
