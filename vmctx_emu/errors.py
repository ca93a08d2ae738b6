"""The package's exception tree: one root, each leaf also a builtin so callers can catch either.

Every exception class of the package is here; each carries its facts as attributes.
"""

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
    "BadMagicError",
    "ClosedError",
    "DumpError",
    "SidecarConflictError",
    "CaptureError",
    "InferError",
    "StoreContextError",
    "TooManyCandidatesError",
    "Trap",
    "HostCallError",
    "HostPanic",
    "ContextMismatch",
    "LiveError",
    "NoSuchProcessError",
    "AccessDeniedError",
    "ProcessGoneError",
    "CoreFileError",
    "SymbolFileError",
    "UnreadableMemoryError",
    "ContextNotFoundError",
    "UnsupportedTargetError",
    "FileMismatchError",
    "ElfFormatError",
]


class VMCtxEmuError(Exception):
    """Root of every error this package raises on purpose; the CLI catches only this.

    An error carries its facts as attributes, named in its class's `facts`
    (None where the raiser did not know one), so a caller can word it its own
    way: the message speaks of Python arguments; the CLI (`cli._phrase`)
    speaks of its options where an option is the fix.
    """

    facts = ()

    def __init__(self, message="", /, **facts):
        super().__init__(message)
        unknown = set(facts) - set(self.facts)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no fact {', '.join(sorted(unknown))}")
        for name in self.facts:
            setattr(self, name, facts.get(name))


class InvalidPtrSizeError(VMCtxEmuError, ValueError):
    """A pointer size for which Wasmtime's `PtrSize` arithmetic would panic."""


class ComponentValueError(VMCtxEmuError, ValueError):
    """A component count that is not a `u32`: `argument` names it, `value` is what it was."""

    facts = ("argument", "value")


class LayoutError(VMCtxEmuError, ValueError):
    """A layout asked for something it does not have (a region, a count of another release)."""


class UnknownRegionError(LayoutError, KeyError):
    """A region name the layout does not have."""

    __str__ = Exception.__str__


class LayoutOverflowError(VMCtxEmuError, OverflowError):
    """A `checked_add`/`checked_mul` that fails while laying out the context."""


class UnknownReleaseError(VMCtxEmuError, ValueError):
    """A Wasmtime version this package has no layout for (`version`, as given; `newest`, the newest release
    the package knows)."""

    facts = ("version", "newest")


class ComponentIndexError(VMCtxEmuError, IndexError):
    """An index that Wasmtime's accessor `assert!` would reject: `index` of `accessor`, not below `count`
    (`count_name`)."""

    facts = ("accessor", "index", "count", "count_name")


class ArgumentTypeError(VMCtxEmuError, TypeError):
    """A public function given an argument of the wrong type: `argument` names it, `value` is what it was."""

    facts = ("argument", "value")


class ArgumentValueError(VMCtxEmuError, ValueError):
    """A public function given an argument outside what it (or the Rust it mirrors) accepts: `argument`,
    its `value` and the `bound` it broke, where one applies."""

    facts = ("argument", "value", "bound")


class VMContextError(VMCtxEmuError):
    """A runtime invariant of the context broken: bad magic, slot set twice, slot read unset."""


class BadMagicError(VMContextError):
    """The u32 at offset 0 is not `VMCOMPONENT_MAGIC`: `found` holds those 4 bytes, `address` the
    context's; loading a dump, `path` is the dump and `reason` the message without the way around it."""

    facts = ("found", "address", "path", "reason")


class ClosedError(VMCtxEmuError, ValueError):
    """An instance used after `close()`."""


class DumpError(VMCtxEmuError, ValueError):
    """A dump or its sidecar that cannot be read as the layout it claims or is given.

    `path` is the dump; `missing` what a dump without a sidecar needed and was
    not given ("counts", "ptr_size"), and then `reason` the message without
    how to give them.
    """

    facts = ("path", "missing", "reason")


class SidecarConflictError(DumpError):
    """An argument that contradicts what the dump's sidecar records, where the caller asked for agreement
    (`load_dump(..., strict_sidecar=True)`): `argument` names it (`wasmtime`, `ptr`, `byte_order`,
    `debug_assertions`, or a count's Rust name), `given` is its value, `recorded` the sidecar's, `sidecar`
    the sidecar's path."""

    facts = ("path", "missing", "reason", "argument", "given", "recorded", "sidecar")


class CaptureError(VMCtxEmuError, ValueError):
    """A capture that cannot be written: `directory` exists and is not empty (or is not a directory), or the
    capture's `size` in bytes is more than the `limit` it may have; `reason` says which."""

    facts = ("directory", "size", "limit", "reason")


class InferError(VMCtxEmuError, ValueError):
    """A dump no context of the release(s) asked about can explain, or an argument infer cannot use."""


class StoreContextError(VMCtxEmuError, ValueError):
    """Bytes that cannot be a release's `VMRuntimeLimits` / `VMStoreContext`: fewer than its fields need.

    `release` is the release decoded as, `needed` the bytes its fields span
    for the pointer size, `got` the bytes given.
    """

    facts = ("release", "needed", "got")


class TooManyCandidatesError(InferError):
    """Trying every value of an unknown count would take too long.

    `reason` says what would (the message without the way out); `asks`
    whether giving counts is the way out (not for a dump larger than infer
    searches), and `count_name` the count to give (None: the counts the
    caller knows, or the release); `limit` the number of shapes asked for when
    listing them is what would take too long (a lower limit is a way out too).
    """

    facts = ("reason", "count_name", "asks", "limit")


class Trap(VMCtxEmuError):
    """A wasm trap raised by adapter code: `.kind` is "cannot_leave", "cannot_enter", "same_instance" or
    "assert_failed"; the message is what that release's embedder sees."""

    facts = ("kind", "message")

    def __init__(self, kind, message):
        super().__init__(message, kind=kind, message=message)


class HostCallError(VMCtxEmuError):
    """An `Err` returned by `Func::call` ("cannot reenter component instance" up to v11,
    "wasm trap: cannot enter component instance" after)."""


class HostPanic(VMCtxEmuError, AssertionError):
    """A Rust `assert!` / `debug_assert!` in `Func::call` or `Func::post_return` that would panic."""


class ContextMismatch(AssertionError):
    """Two contexts differ (`assert_same_context`, a test assertion, not a package error): `.field` (the
    record's label, "may_leave[1]"), `.index` (its element, None for a single field), `.offset`,
    `.actual`, `.expected` name the first difference; `.release` the Wasmtime release(s) compared;
    `.differences` the label of every compared field that differs, in memory order."""

    def __init__(self, message, field=None, offset=None, actual=None, expected=None, *, index=None, release=None,
                 differences=()):
        super().__init__(message)
        self.field, self.offset, self.actual, self.expected = field, offset, actual, expected
        self.index, self.release, self.differences = index, release, tuple(differences)


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


class ContextNotFoundError(LiveError, LookupError):
    """A scan that lists no context at the address asked about.

    `address` is the address, `source` the target as described, `found` the
    addresses of the contexts the scan found (freed ones included), `inside`
    the one whose bytes hold `address` (None if none does).
    """

    facts = ("address", "source", "found", "inside")
