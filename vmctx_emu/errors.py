"""The package's exception tree: one root, each leaf also a builtin so callers can catch either."""

__all__ = [
    "VMCtxEmuError",
    "InvalidPtrSizeError",
    "ComponentValueError",
    "LayoutOverflowError",
    "ComponentIndexError",
    "VMContextError",
]


class VMCtxEmuError(Exception):
    """Root of every error this package raises on purpose; the CLI catches only this."""


class InvalidPtrSizeError(VMCtxEmuError, ValueError):
    """A pointer size for which Wasmtime's `PtrSize` arithmetic would panic."""


class ComponentValueError(VMCtxEmuError, ValueError):
    """A component count that is not a `u32`."""


class LayoutOverflowError(VMCtxEmuError, OverflowError):
    """A `checked_add`/`checked_mul` that fails while laying out the context."""


class ComponentIndexError(VMCtxEmuError, IndexError):
    """An index that Wasmtime's accessor `assert!` would reject."""


class VMContextError(VMCtxEmuError):
    """A runtime invariant of the context broken: bad magic, slot set twice, slot read unset."""
