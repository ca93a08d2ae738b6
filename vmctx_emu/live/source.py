"""The reader contract every target of a scan meets: its mappings, exact reads, bounded chunks to stream over.

A live process (`process.py`) and a core file (`core.py`) implement it; the
scanner never knows which it reads (as pystack's memory managers, py-spy's
core and process). Reads are positionless (`pread`), so one source may be
shared by threads. Every failure is a `LiveError` with a one-line message
naming the target.
"""

import operator
import os
import stat
import weakref
from dataclasses import dataclass

from ..errors import ArgumentTypeError, ArgumentValueError, ClosedError, UnreadableMemoryError

__all__ = ["Mapping", "MemorySource", "DEFAULT_CHUNK", "integer", "unreadable", "open_regular"]

DEFAULT_CHUNK = 1 << 20


@dataclass(frozen=True)
class Mapping:
    """One address range of the target with its permissions and, when known, the file behind it.

    `path` is /proc/PID/maps' pathname verbatim (so also "[heap]" or
    "/x (deleted)") for a live process, and the NT_FILE name for a core.
    """

    start: int
    end: int
    perms: str
    offset: int = 0
    path: str | None = None

    @property
    def readable(self):
        return self.perms[:1] == "r"

    @property
    def writable(self):
        return self.perms[1:2] == "w"

    @property
    def executable(self):
        return self.perms[2:3] == "x"

    @property
    def size(self):
        return self.end - self.start

    def __repr__(self):  # addresses in hex, as `checks.hex_repr` prints them (not imported: live/ stays off checks)
        return (f"Mapping(start={self.start:#x}, end={self.end:#x}, perms={self.perms!r}, offset={self.offset:#x}, "
                f"path={self.path!r})")

    def __str__(self):
        text = f"0x{self.start:x}-0x{self.end:x} {self.perms}"
        return f"{text} {self.path}" if self.path else text


def integer(value, name):
    """`value` as an int (numpy integers welcome), refusing bools and non-integers by name."""
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def unreadable(source, address, size, reason):
    return UnreadableMemoryError(f"{source.description}: cannot read {size} bytes at 0x{address:x}: {reason}",
                                 address=address, size=size, reason=reason)


class MemorySource:
    """The target's memory, read-only: mappings, exact reads, streaming chunks; a context manager.

    Subclasses implement `mappings`, `_read` (exact bytes or
    UnreadableMemoryError) and, when they can lose parts, `missing` and
    `_present`. Reads are positionless (`pread`), so one source may be shared
    by threads.
    """

    description = "memory"
    pid = None
    arch = "x86_64"
    byte_order = "little"
    ptr_size = 8
    live = False  # a running process (its files may be opened as mapped); never true of a core
    emulated = None  # the emulator running the target's code (qemu-user), whose guest code is mapped r--
    auxv = {}  # the auxiliary vector: AT_* type -> value (a core's NT_AUXV, a process's /proc/PID/auxv)
    command = None  # the program's name and arguments as the kernel recorded them (a core's NT_PRPSINFO)
    file_names = True  # whether the mappings carry the files behind them (a core without NT_FILE: no)

    def __init__(self):
        self._fds = []
        self._finalizer = weakref.finalize(self, _close_fds, self._fds)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<{type(self).__name__} {self.description}{state}>"

    @property
    def closed(self):
        return not self._finalizer.alive

    def close(self):
        """Release the file descriptors (and a decompressed core's temporary file); idempotent."""
        self._finalizer()

    def _check_open(self):
        if self.closed:
            raise ClosedError(f"{self.description}: the memory source is closed")

    def mappings(self):
        """The target's address ranges, sorted by start."""
        raise NotImplementedError

    def missing(self):
        """Ranges `(start, end, reason)` known to be absent; a live process has none."""
        return []

    def file_at(self, address):
        """(path, file offset) of a file the target maps at `address` where no mapping says so (a core whose
        NT_FILE names a range no segment holds: gdb leaves read-only file pages out); None here."""
        return None

    def holds_bytes(self, mapping):
        """Whether the source has any byte of `mapping` (a core's segment may have none): a scan skips one that
        has none without setting anything up for it."""
        self._check_open()
        return bool(self._present(mapping.start, mapping.end))

    def damage(self):
        """One line per defect of the source as a whole (a cut file, a cut gzip stream, notes lost); [] if none.

        `missing()` says which addresses are lost; this says why, once, and
        also what is lost that is no memory (the names of the mapped files).
        """
        return []

    def read(self, address, size):
        """Exactly `size` bytes at `address`, or UnreadableMemoryError naming address, size and why."""
        self._check_open()
        address, size = integer(address, "address"), integer(size, "size")
        if address < 0 or size < 0 or address >= 1 << 64:
            raise ArgumentValueError(f"cannot read {size} bytes at {address:#x}: outside the 64-bit address space")
        if address + size > 1 << 64:  # a pointer found in the target, near the top: its bytes are not there
            raise UnreadableMemoryError(f"{self.description}: cannot read {size} bytes at {address:#x}: they would "
                                        "run past the end of the 64-bit address space", address=address, size=size,
                                        reason="past the end of the address space")
        return self._read(address, size) if size else b""

    def iter_chunks(self, mapping, chunk=DEFAULT_CHUNK):
        """Yield `(address, bytes)` over `mapping` in order, at most `chunk` bytes each.

        Only one chunk is held at a time, so a scan never holds the address
        space. A mapping the process itself may not read (no "r") is refused
        up front: /proc/PID/mem would read it anyway (FOLL_FORCE), faulting in
        pages of e.g. multi-GiB guard reservations. Ranges listed by
        `missing()` are skipped, not raised. A read that fails mid-way raises
        UnreadableMemoryError for this mapping only; the caller goes on with
        the next one.
        """
        self._check_open()
        if not isinstance(mapping, Mapping):
            raise ArgumentTypeError(f"mapping must be a Mapping (from mappings()), got {type(mapping).__name__}")
        chunk = integer(chunk, "chunk")
        if chunk <= 0:
            raise ArgumentValueError(f"chunk must be positive, got {chunk}")
        start, end = integer(mapping.start, "mapping.start"), integer(mapping.end, "mapping.end")
        if not 0 <= start <= end <= 1 << 64:
            raise ArgumentValueError(f"mapping 0x{start:x}-0x{end:x} is not a range of the 64-bit address space")
        if not mapping.readable:
            reason = f"the mapping is not readable ({mapping.perms})"
            raise UnreadableMemoryError(f"{self.description}: mapping {mapping}: {reason}",
                                        address=start, size=end - start, reason=reason)
        return self._chunks(mapping, self._present(start, end), chunk)

    def _chunks(self, mapping, ranges, chunk):
        for lo, hi in ranges:
            for address in range(lo, hi, chunk):
                size = min(chunk, hi - address)
                try:
                    data = self._read(address, size)
                except UnreadableMemoryError as e:
                    raise UnreadableMemoryError(f"{self.description}: mapping {mapping}: cannot read {size} bytes "
                                                f"at 0x{address:x}: {e.reason}",
                                                address=address, size=size, reason=e.reason) from None
                yield address, data

    def _present(self, start, end):
        """The parts of [start, end) this source has bytes for, in order."""
        return [(start, end)] if end > start else []

    def _read(self, address, size):
        raise NotImplementedError


def _close_fds(fds):
    while fds:
        fd = fds.pop()
        try:
            if isinstance(fd, int):
                os.close(fd)
            else:
                fd.close()
        except OSError:
            pass


def open_regular(path):
    """`path` opened for reading ("rb") if it is a regular file; OSError otherwise.

    A file a target or a core names can be anything by the time it is opened: a FIFO that never
    answers, a device. Opened without waiting (O_NONBLOCK), checked with fstat, then made blocking.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{os.fsdecode(path)} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
