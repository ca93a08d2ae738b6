"""The argument checks every public boundary shares: each names the argument, its value and the bound.

Each check returns the value it accepted, or raises one of the package's
errors (also a `TypeError` / `ValueError`) whose message reads
"{what} must be {...}, got {value}". `check_int` is the one integer check; the
others are it with a bound (`check_u32`, `check_ptr`), or the few that are not
integers. Nothing here imports numpy or another layer.
"""

import operator
from collections.abc import Mapping

from .errors import ArgumentTypeError, ArgumentValueError, ComponentIndexError, ComponentValueError

__all__ = ["BYTE_ORDER_CHAR", "U32_LIMIT", "check_int", "check_u32", "check_ptr", "check_index", "check_counts",
           "check_bool", "check_byte_order", "hex_repr"]

BYTE_ORDER_CHAR = {"little": "<", "big": ">"}
U32_LIMIT = 1 << 32


def check_int(what, value, low=0, high=None, *, kind="an int", bound=None, hex_value=False,
              type_error=ArgumentTypeError, value_error=ArgumentValueError):
    """`value` if it is an int (a bool is not) in [low, high) (`high` None: no upper bound).

    Otherwise `type_error` "{what} must be {kind}, got {type} {value!r}", or
    `value_error` "{what} must be {bound}, got {value}" (`bound` defaults to
    the range; `hex_value` shows the value in hex, as addresses are).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(type_error, f"{what} must be {kind}, got {type(value).__name__} {value!r}", argument=what,
                     value=value)
    if value < low or (high is not None and value >= high):
        if bound is None:
            bound = f">= {low}" if high is None else f"in [{low}, {high:#x})"
        shown = f"{value:#x}" if hex_value else f"{value}"
        raise _error(value_error, f"{what} must be {bound}, got {shown}", argument=what, value=value, bound=bound)
    return value


def _error(cls, message, **facts):
    """`cls(message)` with those of `facts` it carries (a package error may carry none)."""
    return cls(message, **{k: v for k, v in facts.items() if k in getattr(cls, "facts", ())})


def check_u32(what, value, *, type_error=ComponentValueError, value_error=ComponentValueError):
    """`value` as a `u32` (a Rust count), else `ComponentValueError` naming `what`."""
    return check_int(what, value, 0, U32_LIMIT, kind="an int in [0, 2**32)", bound="in [0, 2**32) (a u32)",
                     type_error=type_error, value_error=value_error)


def check_ptr(what, value, ptr):
    """`value` as a pointer of `ptr` bytes (an int in [0, 2**(8*ptr))), else an error naming `what`."""
    bits = 8 * int(ptr)
    return check_int(what, value, 0, 1 << bits, bound=f"an int in [0, 2**{bits}) for pointer size {int(ptr)}",
                     hex_value=True)


def check_index(accessor, count_name, count, index):
    """`index` as an int the Rust `assert!(index < count)` accepts (anything with `__index__` but a bool),
    else `ArgumentTypeError`, or `ComponentIndexError` naming the count."""
    what = f"{accessor} index"
    if isinstance(index, bool):
        raise ArgumentTypeError(f"{what} must be an int, got bool {index!r}", argument=what, value=index)
    try:
        i = operator.index(index)
    except TypeError:
        raise ArgumentTypeError(f"{what} must be an int, got {type(index).__name__} {index!r}", argument=what,
                                value=index) from None
    if not 0 <= i < count:
        raise ComponentIndexError(f"{accessor} index {i} out of range ({count_name}={count})",
                                  accessor=accessor, index=i, count=count, count_name=count_name)
    return i


def check_counts(counts):
    """A `counts` argument (count name -> u32) as a dict; argument errors name the count and its value."""
    if not isinstance(counts, Mapping):
        raise ArgumentTypeError(f"counts must be a mapping of count name -> int, got {type(counts).__name__} "
                                f"{counts!r}", argument="counts", value=counts)
    checked = {}
    for name, value in counts.items():
        if not isinstance(name, str):
            raise ArgumentTypeError(f"counts: names must be str, got {type(name).__name__} {name!r}",
                                    argument="counts", value=name)
        checked[name] = check_u32(f"counts[{name!r}]", value, type_error=ArgumentTypeError,
                                  value_error=ArgumentValueError)
    return checked


def check_bool(what, value):
    """`value` if it is True or False: "no", None and 1 are not bools."""
    if value is not True and value is not False:
        raise ArgumentTypeError(f"{what} must be a bool, got {type(value).__name__} {value!r}", argument=what,
                                value=value)
    return value


def check_byte_order(byte_order):
    if byte_order not in BYTE_ORDER_CHAR:
        raise ArgumentValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}", argument="byte_order",
                                 value=byte_order, bound="'little' or 'big'")
    return byte_order


def hex_repr(obj, addresses, fields=None):
    """`Name(field=value, ...)` of a dataclass or namedtuple `obj` (or only `fields`), the ints of the fields
    named in `addresses` in hex (`address=0x7f0012340000`), as the package prints addresses everywhere."""
    if fields is None and not hasattr(obj, "_fields"):
        import dataclasses  # here, not at the top: the CLI's start-up imports this module, never dataclasses

        fields = [f.name for f in dataclasses.fields(obj) if f.repr]
    elif fields is None:
        fields = obj._fields
    parts = []
    for name in fields:
        value = getattr(obj, name)
        shown = f"{value:#x}" if name in addresses and isinstance(value, int) and not isinstance(value, bool) \
            else repr(value)
        parts.append(f"{name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"
