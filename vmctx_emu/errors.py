"""The package's exception tree: one root, each leaf also a builtin so callers can catch either."""

__all__ = [
    "VMCtxEmuError",
    "InvalidPtrSizeError",
    "ComponentValueError",
    "LayoutError",
    "LayoutOverflowError",
    "UnknownRegionError",
    "UnknownReleaseError",
    "ComponentIndexError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "VMContextError",
    "ClosedError",
    "LiveError",
    "NoSuchProcessError",
    "AccessDeniedError",
    "ProcessGoneError",
    "CoreFileError",
    "SymbolFileError",
    "UnreadableMemoryError",
    "UnsupportedTargetError",
    "FileMismatchError",
    "ElfFormatError",
]


class VMCtxEmuError(Exception):
    """Root of every error this package raises on purpose; the CLI catches only this."""


class InvalidPtrSizeError(VMCtxEmuError, ValueError):
    """A pointer size for which Wasmtime's `PtrSize` arithmetic would panic."""


class ComponentValueError(VMCtxEmuError, ValueError):
    """A component count that is not a `u32`."""


class LayoutError(VMCtxEmuError, ValueError):
    """A layout asked for something it does not have (a region, a count of another release)."""


class UnknownRegionError(LayoutError, KeyError):
    """A region name the layout does not have."""

    __str__ = Exception.__str__


class LayoutOverflowError(VMCtxEmuError, OverflowError):
    """A `checked_add`/`checked_mul` that fails while laying out the context."""


class UnknownReleaseError(VMCtxEmuError, ValueError):
    """A Wasmtime version this package has no layout for."""


class ComponentIndexError(VMCtxEmuError, IndexError):
    """An index that Wasmtime's accessor `assert!` would reject."""


class ArgumentTypeError(VMCtxEmuError, TypeError):
    """A public function given an argument of the wrong type; the message names the argument."""


class ArgumentValueError(VMCtxEmuError, ValueError):
    """A public function given an argument outside what it (or the Rust it mirrors) accepts."""


class VMContextError(VMCtxEmuError):
    """A runtime invariant of the context broken: bad magic, slot set twice, slot read unset."""


class ClosedError(VMCtxEmuError, ValueError):
    """An instance used after `close()`."""


class LiveError(VMCtxEmuError):
    """Reading a live process or a core file failed; the message is one line naming the target."""


class NoSuchProcessError(LiveError, ProcessLookupError):
    """The pid names no process (never existed, or already reaped)."""


class AccessDeniedError(LiveError, PermissionError):
    """The kernel refused to let us read the process (or the core file): ptrace rules, user, mode bits."""


class ProcessGoneError(LiveError, ProcessLookupError):
    """The process exited while we were reading it; nothing more can be read from it."""


class CoreFileError(LiveError, ValueError):
    """A file that is not a core file this package can read: not ELF, 32-bit, big-endian, other machine."""


class ElfFormatError(LiveError, ValueError):
    """An ELF file whose headers or tables are damaged: truncated, offsets past its end, bad sizes or indices.

    `path` is the file, `offset` and `size` the read that failed (when one did).
    """

    def __init__(self, message, *, path=None, offset=None, size=None):
        super().__init__(message)
        self.path, self.offset, self.size = path, offset, size


class SymbolFileError(ElfFormatError):
    """An ELF file whose headers or symbol tables are damaged: truncated, offsets past its end, bad indices."""


class UnsupportedTargetError(LiveError, ValueError):
    """A live process this package cannot decode: not a 64-bit x86-64/aarch64 process."""


class FileMismatchError(LiveError, ValueError):
    """A file supplied for a target whose bytes differ from the ones the target holds of it.

    `path` is the file, `offset` the first differing file offset, `address`
    where the target holds that byte.
    """

    def __init__(self, message, *, path=None, offset=None, address=None):
        super().__init__(message)
        self.path, self.offset, self.address = path, offset, address


class UnreadableMemoryError(LiveError, OSError):
    """Bytes that cannot be read: unmapped, kernel-refused, or not in the core file.

    `address` and `size` are the request, `reason` why it failed; callers
    scanning many regions catch this one and go on with the next region.
    """

    def __init__(self, message, *, address=None, size=None, reason=None):
        super().__init__(message)
        self.address, self.size, self.reason = address, size, reason
