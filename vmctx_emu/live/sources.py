"""Read-only memory sources: a live process through /proc, or an ELF core file.

Both give a scanner the same three things: the mappings, exact reads, and
bounded chunks to stream over. Nothing here writes to a target, attaches with
ptrace or stops it: a live process is read with `pread` on /proc/PID/mem,
which the kernel allows under the same rules as ptrace-attach but which leaves
the process running. That also means a live read is a snapshot of memory the
process may be changing; callers that need consistency read a core file.

Every failure is a `LiveError` with a one-line message naming the target.
"""

import bisect
import errno
import gzip
import operator
import os
import re
import stat
import struct
import tempfile
import weakref
import zlib
from dataclasses import dataclass

from .elf import ARCH_OF_MACHINE, EHDR, ELF_MAGIC, MACHINE_NAMES, PF_R, PF_W, PF_X, PHDR, PT_LOAD, PT_NOTE, SHDR
from ..errors import (AccessDeniedError, ArgumentTypeError, ArgumentValueError, ClosedError, CoreFileError,
                      LiveError, NoSuchProcessError, ProcessGoneError, UnreadableMemoryError,
                      UnsupportedTargetError)

__all__ = ["Mapping", "MemorySource", "ProcessSource", "CoreFileSource", "open_source", "parse_maps"]

DEFAULT_CHUNK = 1 << 20

# ELF constants (elf.h) this module needs beyond elf.py's.
_GZIP_MAGIC = b"\x1f\x8b"
_ELFCLASS64, _ELFDATA2LSB, _ET_CORE = 2, 1, 4
_PN_XNUM = 0xFFFF
_NT_PRSTATUS, _NT_PRPSINFO, _NT_AUXV, _NT_FILE = 1, 3, 6, 0x46494C45
_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_ARCH_OF_UNAME = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# Offsets in the 64-bit Linux note layouts (same on x86-64 and aarch64): elf_prpsinfo's pr_pid,
# pr_fname[16] and pr_psargs[80]; elf_prstatus's pr_pid.
_PRPSINFO_PID, _PRPSINFO_FNAME, _PRPSINFO_PSARGS, _PRSTATUS_PID = 24, 40, 56, 32
# qemu-user runs a guest program in a host process: /proc/PID/exe is the emulator, named for the guest.
_QEMU_USER = re.compile(r"^qemu-([a-z0-9_]+?)(?:-static)?$")
# pread's offset is a signed off_t: /proc/PID/mem cannot be read at or above 2**63 (kernel space anyway).
_PREAD_LIMIT = 1 << 63
# A note segment larger than this is damage, not notes; reading it whole would only waste memory.
_MAX_NOTES = 256 << 20


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

    def __str__(self):
        text = f"0x{self.start:x}-0x{self.end:x} {self.perms}"
        return f"{text} {self.path}" if self.path else text


def _index(value, name):
    """`value` as an int (numpy integers welcome), refusing bools and non-integers by name."""
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def _unreadable(source, address, size, reason):
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

    def damage(self):
        """One line per defect of the source as a whole (a cut file, a cut gzip stream, notes lost); [] if none.

        `missing()` says which addresses are lost; this says why, once, and
        also what is lost that is no memory (the names of the mapped files).
        """
        return []

    def read(self, address, size):
        """Exactly `size` bytes at `address`, or UnreadableMemoryError naming address, size and why."""
        self._check_open()
        address, size = _index(address, "address"), _index(size, "size")
        if address < 0 or size < 0 or address + size > 1 << 64:
            raise ArgumentValueError(f"cannot read {size} bytes at {address:#x}: outside the 64-bit address space")
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
        chunk = _index(chunk, "chunk")
        if chunk <= 0:
            raise ArgumentValueError(f"chunk must be positive, got {chunk}")
        start, end = _index(mapping.start, "mapping.start"), _index(mapping.end, "mapping.end")
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


# --------------------------------------------------------------------------- live processes

def parse_maps(text):
    """The mappings of a /proc/PID/maps text (str or bytes), sorted by start.

    The pathname is everything after the inode column with the column padding
    removed, so names with spaces and "(deleted)" survive; bytes are decoded
    like file names (surrogateescape).
    """
    if isinstance(text, (bytes, bytearray)):
        text = os.fsdecode(bytes(text))
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        fields = line.split(" ", 5)
        try:
            low, high = fields[0].split("-")
            start, end, perms, offset = int(low, 16), int(high, 16), fields[1], int(fields[2], 16)
            if len(fields) < 5 or len(perms) != 4:
                raise ValueError
        except (ValueError, IndexError):
            raise LiveError(f"unexpected line in a maps file: {line[:120]!r}") from None
        path = fields[5].lstrip(" ") if len(fields) == 6 else ""
        out.append(Mapping(start, end, perms, offset, path or None))
    out.sort(key=lambda m: m.start)
    return out


def _check_pid(pid):
    pid = _index(pid, "pid")
    if pid <= 0:
        raise ArgumentValueError(f"a pid is a positive integer, got {pid}")
    return pid


def _read_all(fd):
    parts = []
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return b"".join(parts)
        parts.append(data)


def _elf_arch(header, what):
    """`arch` for a live process's executable header, None when it does not look like ELF."""
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return None
    if header[4] != _ELFCLASS64:
        raise UnsupportedTargetError(f"{what} is a 32-bit process; only 64-bit x86-64 and aarch64 are supported")
    machine = struct.unpack_from("<H" if header[5] == _ELFDATA2LSB else ">H", header, 18)[0]
    if machine not in ARCH_OF_MACHINE or header[5] != _ELFDATA2LSB:
        raise UnsupportedTargetError(f"{what} runs machine {machine} ({MACHINE_NAMES.get(machine, 'unknown')}) "
                                     "code; only x86-64 and aarch64 are supported")
    return ARCH_OF_MACHINE[machine]


def _host_arch(what):
    machine = os.uname().machine
    if machine not in _ARCH_OF_UNAME:
        raise UnsupportedTargetError(f"{what}: this host is {machine}; only x86-64 and aarch64 are supported")
    return _ARCH_OF_UNAME[machine]


class ProcessSource(MemorySource):
    """A running process, read through /proc/PID/mem without attaching to or stopping it.

    The /proc/PID directory is held open, so a pid reused after the target
    exits cannot redirect reads to another process. `proc` exists for tests.
    """

    live = True

    def __init__(self, pid, *, proc="/proc"):
        super().__init__()
        pid = _check_pid(pid)
        self.pid = pid
        self.description = f"this process (pid {pid})" if pid == os.getpid() else f"pid {pid}"
        if not os.path.isdir(proc):
            raise LiveError(f"{self.description}: live processes are read through {proc}, which this system lacks")
        try:
            self._dir = self._open_dir(proc)
            self._mem = self._open("mem")
            self.arch = self._arch()
        except BaseException:
            self.close()
            raise

    def _open_dir(self, proc):
        return self._open_at(os.path.join(proc, str(self.pid)), os.O_DIRECTORY, None, f"/proc/{self.pid}")

    def _open(self, name):
        return self._open_at(name, 0, self._dir, f"/proc/{self.pid}/{name}")

    def _open_at(self, path, flags, dir_fd, what):
        """A read-only fd on the target's /proc entry, its errors named as the package's."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            # With /proc/PID open, a missing entry is a process that exited (a zombie has no mem), not no process.
            gone = self._gone() if dir_fd is not None else None
            raise gone or NoSuchProcessError(f"no such process: pid {self.pid}") from None
        except PermissionError as e:
            raise self._denied(e) from None
        except OSError as e:
            raise LiveError(f"{self.description}: cannot open {what}: {e.strerror}") from None
        self._fds.append(fd)
        return fd

    def _denied(self, error):
        """AccessDeniedError saying who owns the target and which kernel rule usually decides."""
        owner = ""
        try:
            owner = f" (it runs as uid {os.stat(f'/proc/{self.pid}').st_uid}, we are uid {os.geteuid()})"
        except OSError:
            pass
        scope = ""
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                scope = f" (it is {f.read().strip()} here)"
        except OSError:
            pass
        return AccessDeniedError(
            f"cannot read the memory of pid {self.pid}: {error.strerror or 'permission denied'}{owner}; "
            "reading needs ptrace permission: the same user and a non-setuid target, or root/CAP_SYS_PTRACE, "
            f"and /proc/sys/kernel/yama/ptrace_scope{scope} must allow it (1 = only descendants, 0 = same user)")

    def _arch(self):
        """The target's own arch (from its executable), so a 32-bit or foreign process is refused early.

        Under qemu-user the executable is the emulator, named for the guest
        it runs (`qemu-aarch64`): the guest's arch is the target's.
        """
        try:
            exe = os.path.basename(os.readlink("exe", dir_fd=self._dir))
        except OSError:
            exe = ""
        guest = _QEMU_USER.match(exe)
        if guest:
            self.emulated = exe
            if guest.group(1) not in _ARCH_OF_UNAME:
                raise UnsupportedTargetError(f"{self.description} runs {guest.group(1)} code under {exe}; only "
                                             "64-bit little-endian x86-64 and aarch64 are supported")
            return _ARCH_OF_UNAME[guest.group(1)]
        try:
            fd = os.open("exe", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
        except OSError:  # kernel threads have no exe; the host decides
            return _host_arch(self.description)
        try:
            header = os.pread(fd, 20, 0)
        except OSError:
            header = b""
        finally:
            os.close(fd)
        return _elf_arch(header, self.description) or _host_arch(self.description)

    def _state(self):
        """The process state letter from /proc/PID/stat, or None once the process is gone."""
        try:
            fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
            try:
                text = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            return None
        fields = text[text.rfind(b")") + 1:].split()
        return fields[0].decode("ascii", "replace") if fields else None

    def _gone(self):
        """ProcessGoneError if the target has exited (or is a zombie, whose memory is already freed)."""
        state = self._state()
        if state is None or state in "XxZ":
            detail = " (a zombie: exited, not yet reaped)" if state == "Z" else ""
            return ProcessGoneError(f"{self.description} has exited{detail}; its memory can no longer be read")
        return None

    def mappings(self):
        self._check_open()
        try:
            fd = os.open("maps", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
            try:
                text = _read_all(fd)
            finally:
                os.close(fd)
        except PermissionError as e:
            raise self._denied(e) from None
        except OSError as e:
            raise self._gone() or LiveError(f"{self.description}: cannot read maps: {e.strerror}") from None
        found = parse_maps(text)
        if not found and (gone := self._gone()):
            raise gone
        return found

    def _read(self, address, size):
        if address + size > _PREAD_LIMIT:
            raise _unreadable(self, address, size, f"0x{max(address, _PREAD_LIMIT):x} is in kernel address space, "
                                                   "which /proc/PID/mem cannot read")
        parts, pos, end = [], address, address + size
        while pos < end:
            try:
                data, error = os.pread(self._mem, end - pos, pos), None
            except OSError as e:
                data, error = b"", e
            if not data:
                if gone := self._gone():
                    raise gone from None
                if error is None:
                    why = f"no memory at 0x{pos:x} (the read returned nothing)"
                elif error.errno in (errno.EIO, errno.EFAULT):
                    why = f"0x{pos:x} is not mapped or the kernel will not read it ({errno.errorcode[error.errno]})"
                else:
                    why = f"0x{pos:x}: {errno.errorcode.get(error.errno, error.errno)}: {error.strerror}"
                raise _unreadable(self, address, size, why) from None
            parts.append(data)
            pos += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)


# --------------------------------------------------------------------------- core files

@dataclass(frozen=True)
class _Segment:
    """A PT_LOAD: [start, data_end) has bytes in the file at `offset`; the rest of [start, end) does not."""

    start: int
    end: int
    offset: int
    data_end: int
    file_end: int  # where the bytes would end if the file were whole (p_filesz)
    truncated: str  # the reason for [data_end, file_end)


def _notes(data, align):
    """(name, type, desc) of each complete note in a PT_NOTE's bytes; a damaged tail ends the walk."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + -(-namesz // align) * align
        if desc + descsz > len(data):
            return
        yield bytes(data[pos + 12:pos + 12 + namesz]).rstrip(b"\0"), ntype, data[desc:desc + descsz]
        pos = desc + -(-descsz // align) * align


def _file_entries(desc):
    """NT_FILE: [(start, end, file offset in bytes, path)], or [] when the note does not add up."""
    if len(desc) < 16:
        return []
    count, page_size = struct.unpack_from("<QQ", desc, 0)
    table_end = 16 + count * 24
    if table_end > len(desc):
        return []
    names = bytes(desc[table_end:]).split(b"\0")
    if len(names) < count:
        return []
    entries = []
    for i in range(count):
        start, end, page = struct.unpack_from("<QQQ", desc, 16 + 24 * i)
        if end > start:
            entries.append((start, end, page * page_size, os.fsdecode(names[i])))
    entries.sort()
    return entries


def _split(start, end, perms, entries, ends):
    """The mappings of one segment, cut where NT_FILE's file-backed ranges begin and end."""
    out, pos = [], start
    for i in range(bisect.bisect_right(ends, start), len(entries)):
        low, high, offset, path = entries[i]
        if low >= end:
            break
        if low > pos:
            out.append(Mapping(pos, low, perms))
            pos = low
        high = min(high, end)
        if high > pos:
            out.append(Mapping(pos, high, perms, offset + (pos - low), path))
            pos = high
    if pos < end:
        out.append(Mapping(pos, end, perms))
    return out


class CoreFileSource(MemorySource):
    """An ELF64 little-endian core file (x86-64 or aarch64), gzip-compressed or not.

    PT_LOAD segments are the memory; the NT_FILE note names the files behind
    them. What the file does not hold (p_filesz < p_memsz, or a file cut
    short) is reported by `missing()` rather than refused, so the rest of a
    damaged core stays usable. A gzip core is decompressed stream-wise into an
    anonymous temporary file (in TMPDIR) that disappears on close. What is
    wrong with the file as a whole (cut notes, a cut gzip stream) is listed
    by `damage()`. Only regular files are read: a named pipe or a device is
    refused, not waited on.
    """

    _gzip_cut = None  # why the decompressed core is shorter than the original, when it is
    file_names_why = None  # why the mappings carry no file names, when they do not

    def __init__(self, path):
        super().__init__()
        self._damage = []
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise ArgumentTypeError(f"a core file path must be a str or a path, got {type(path).__name__}")
        self.path = path
        self.description = f"core {os.fsdecode(os.fspath(path))}"
        try:
            self._fd = self._open(path)
            self._parse()
        except BaseException:
            self.close()
            raise

    def _error(self, what):
        if self._gzip_cut:
            what = f"{what}; {self._gzip_cut}"
        return CoreFileError(f"{self.description}: {what}")

    def _open(self, path):
        try:
            # O_NONBLOCK: opening a named pipe would otherwise wait for a writer, forever.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise self._error("no such file") from None
        except PermissionError:
            raise AccessDeniedError(f"{self.description}: permission denied (cannot open the file for reading)") \
                from None
        except OSError as e:
            raise self._error(f"cannot open: {e.strerror}") from None
        self._fds.append(fd)
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise self._error("cannot read: Is a directory, not a core file")
        if not stat.S_ISREG(mode):
            kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                    else "not a regular file")
            raise self._error(f"{kind}, not a core file: a core is read at random offsets, so it must be a regular "
                              "file (save a stream to a file first)")
        os.set_blocking(fd, True)
        try:
            magic = os.pread(fd, 2, 0)
        except OSError as e:  # a file system that refuses pread
            raise self._error(f"cannot read: {e.strerror}") from None
        return self._gunzip(fd) if magic == _GZIP_MAGIC else fd

    def _gunzip(self, fd):
        """The fd of a temporary file holding the decompressed core; streamed, never whole in memory."""
        tmp = tempfile.TemporaryFile(prefix="vmctx-core-")
        self._fds.append(tmp)
        written = 0
        try:
            with open(fd, "rb", closefd=False) as raw, gzip.GzipFile(fileobj=raw) as stream:
                # read1, not read: a cut stream raises EOFError, and read() would drop what it had gathered.
                while data := stream.read1(DEFAULT_CHUNK):
                    tmp.write(data)
                    written += len(data)
        except EOFError:
            # A cut gzip stream: keep what came out; missing() reports the segments it lacks.
            self._gzip_cut = (f"the gzip stream is cut short: it ends after {written} decompressed bytes "
                              f"({os.fstat(fd).st_size} compressed)")
            self._damage.append(self._gzip_cut)
        except (gzip.BadGzipFile, zlib.error) as e:
            raise self._error(f"damaged gzip stream: {e}") from None
        except OSError as e:
            raise self._error(f"cannot decompress into a temporary file in {tempfile.gettempdir()}: "
                              f"{e.strerror or e}") from None
        tmp.flush()
        self._fds.remove(fd)  # the compressed file is no longer needed
        os.close(fd)
        return tmp.fileno()

    def _pread(self, size, offset):
        """Up to `size` bytes at `offset` (fewer only at end of file)."""
        parts = []
        while size > 0:
            data = os.pread(self._fd, size, offset)
            if not data:
                break
            parts.append(data)
            size -= len(data)
            offset += len(data)
        return b"".join(parts)

    def _parse(self):
        file_size = os.fstat(self._fd).st_size
        head = self._pread(EHDR.size, 0)
        if head[:4] != ELF_MAGIC:
            raise self._error("not an ELF file" + (" (it is empty)" if not head else ""))
        if len(head) >= 5 and head[4] != _ELFCLASS64:
            raise self._error("a 32-bit ELF; only 64-bit cores are supported" if head[4] == 1
                              else f"not a valid ELF file (class {head[4]})")
        if len(head) >= 6 and head[5] != _ELFDATA2LSB:
            raise self._error("big-endian; only little-endian cores are supported" if head[5] == 2
                              else f"not a valid ELF file (data encoding {head[5]})")
        if len(head) < EHDR.size:
            raise self._error(f"truncated: the ELF header needs {EHDR.size} bytes, file has {file_size}")
        (_, e_type, machine, _, _, phoff, shoff, _, _, phentsize, phnum, _, _, _) = EHDR.unpack(head)
        if e_type != _ET_CORE:
            raise self._error(f"not a core file ({_ET_NAMES.get(e_type, f'type {e_type}')})")
        if machine not in ARCH_OF_MACHINE:
            raise self._error(f"machine {machine} ({MACHINE_NAMES.get(machine, 'unknown')}) is not supported; "
                              "only x86-64 and aarch64 are")
        self.arch = ARCH_OF_MACHINE[machine]
        if phnum == _PN_XNUM:  # more than 65534 segments: the real count is section 0's sh_info
            section0 = self._pread(SHDR.size, shoff)
            if len(section0) < SHDR.size:
                raise self._error(f"truncated: section header 0 at file offset {shoff} needs {SHDR.size} bytes, "
                                  f"file has {file_size}")
            phnum = SHDR.unpack(section0)[7]
        if phnum and phentsize != PHDR.size:
            raise self._error(f"program headers of {phentsize} bytes; ELF64 has {PHDR.size}")
        table = self._pread(phnum * PHDR.size, phoff)
        if len(table) < phnum * PHDR.size:
            raise self._error(f"truncated: program headers at file offset {phoff} need {phnum * PHDR.size} bytes, "
                              f"file has {file_size}")
        segments, entries = [], []
        notes = cut_notes = cut_loads = 0
        for index in range(phnum):
            p_type, flags, offset, vaddr, _, filesz, memsz, align = PHDR.unpack_from(table, index * PHDR.size)
            filesz = min(filesz, memsz) if p_type == PT_LOAD else filesz
            present = max(0, min(filesz, file_size - offset))
            if p_type == PT_NOTE:
                notes += 1
                if present < filesz:
                    cut_notes += 1
                    self._damage.append(f"truncated core file: the notes (segment {index}) at file offset {offset} "
                                        f"need {filesz} bytes, file has {file_size}")
                self._read_notes(self._pread(min(present, _MAX_NOTES), offset), 8 if align == 8 else 4, entries)
            elif p_type == PT_LOAD and memsz and vaddr + memsz <= 1 << 64:
                perms = "".join(c if flags & bit else "-" for c, bit in (("r", PF_R), ("w", PF_W), ("x", PF_X)))
                truncated = (f"truncated core file: segment {index} at file offset {offset} needs {filesz} bytes, "
                             f"file has {file_size}")
                segments.append((_Segment(vaddr, vaddr + memsz, offset, vaddr + present, vaddr + filesz, truncated),
                                 perms + "p"))
                cut_loads += present < filesz
        segments.sort(key=lambda s: s[0].start)
        self._segments = [s for s, _ in segments]
        self._starts = [s.start for s in self._segments]
        if cut_loads:
            self._damage.append(f"truncated core file: {cut_loads} of its {len(segments)} memory segments are cut "
                                f"short or absent (the file has {file_size} bytes)")
        if segments and not entries:
            self.file_names = False
            self.file_names_why = ("the notes that name them are cut off" if cut_notes else "the core has no notes"
                                   if not notes else "the core has no NT_FILE note")
        entries.sort()
        ends = [e[1] for e in entries]
        self._mappings = [m for s, perms in segments for m in _split(s.start, s.end, perms, entries, ends)]
        self._missing = []
        for s in self._segments:
            if s.data_end < s.file_end:
                self._missing.append((s.data_end, s.file_end, s.truncated))
            if s.file_end < s.end:
                self._missing.append((s.file_end, s.end, "not in the core file"))

    def _read_notes(self, data, align, entries):
        prstatus_pid = None
        for name, ntype, desc in _notes(memoryview(data), align):
            if name != b"CORE":
                continue
            if ntype == _NT_FILE:
                entries.extend(_file_entries(desc))
            elif ntype == _NT_AUXV and not self.auxv:
                self.auxv = {kind: value for kind, value in struct.iter_unpack("<QQ", desc[: len(desc) // 16 * 16])
                             if kind}
            elif ntype == _NT_PRPSINFO and len(desc) >= _PRPSINFO_PID + 4:
                self.pid = struct.unpack_from("<i", desc, _PRPSINFO_PID)[0]
                if len(desc) >= _PRPSINFO_PSARGS:
                    fname = bytes(desc[_PRPSINFO_FNAME:_PRPSINFO_PSARGS]).split(b"\0")[0]
                    args = bytes(desc[_PRPSINFO_PSARGS:_PRPSINFO_PSARGS + 80]).split(b"\0")[0]
                    self.command = os.fsdecode(args or fname) or None
            elif ntype == _NT_PRSTATUS and prstatus_pid is None and len(desc) >= _PRSTATUS_PID + 4:
                prstatus_pid = struct.unpack_from("<i", desc, _PRSTATUS_PID)[0]
        if self.pid is None and prstatus_pid:
            self.pid = prstatus_pid

    def mappings(self):
        self._check_open()
        return list(self._mappings)

    def missing(self):
        self._check_open()
        return list(self._missing)

    def damage(self):
        self._check_open()
        return list(self._damage)

    def _segment(self, address):
        i = bisect.bisect_right(self._starts, address) - 1
        return self._segments[i] if i >= 0 and address < self._segments[i].end else None

    def _present(self, start, end):
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        ranges = []
        for s in self._segments[i:]:
            if s.start >= end:
                break
            low, high = max(start, s.start), min(end, s.data_end)
            if high > low:
                ranges.append((low, high))
        return ranges

    def _read(self, address, size):
        parts, pos, end = [], address, address + size
        while pos < end:
            s = self._segment(pos)
            if s is None:
                raise _unreadable(self, address, size, f"0x{pos:x} is in no segment of the core file")
            if pos >= s.data_end:
                why = s.truncated if pos < s.file_end else "not in the core file"
                raise _unreadable(self, address, size, f"0x{pos:x}: {why}")
            want = min(end, s.data_end) - pos
            try:
                data = self._pread(want, s.offset + (pos - s.start))
            except OSError as e:
                raise _unreadable(self, address, size, f"reading the core file failed: {e.strerror}") from None
            if len(data) < want:
                raise _unreadable(self, address, size, "the core file shrank while being read")
            parts.append(data)
            pos += want
        return parts[0] if len(parts) == 1 else b"".join(parts)


# --------------------------------------------------------------------------- entry point

def open_source(source=None):
    """A MemorySource for `source`: None is this process, an int (or a str of digits) a pid, a path a core file.

    A core file whose name is all digits must be given as "./1234" or a Path.
    """
    if source is None:
        return ProcessSource(os.getpid())
    if isinstance(source, bool):
        raise ArgumentTypeError(f"source must be None, a pid or a core file path, got {source!r}")
    if isinstance(source, int):
        return ProcessSource(source)
    if isinstance(source, str) and source.isascii() and source.isdigit():
        return ProcessSource(int(source))
    if isinstance(source, (str, bytes, os.PathLike)):
        return CoreFileSource(source)
    raise ArgumentTypeError(f"source must be None, a pid or a core file path, got {type(source).__name__}")
