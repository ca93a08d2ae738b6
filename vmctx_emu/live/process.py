"""A running process, read through /proc/PID/mem without attaching to or stopping it.

`pread` on /proc/PID/mem is allowed under the same rules as ptrace-attach but
leaves the process running, so a live read is a snapshot of memory the
process may be changing; callers that need consistency read a core file.
A qemu-user process is read as its guest: qemu maps the guest at its own
addresses.
"""

import errno
import os
import re

from ..errors import (AccessDeniedError, ArgumentTypeError, ArgumentValueError, LiveError, NoSuchProcessError, ProcessGoneError,
                      UnsupportedTargetError)
from . import elf
from .source import Mapping, MemorySource, integer, unreadable

__all__ = ["ProcessSource", "parse_maps"]

_ARCH_OF_UNAME = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# qemu-user runs a guest program in a host process: /proc/PID/exe is the emulator, named for the guest.
_QEMU_USER = re.compile(r"^qemu-([a-z0-9_]+?)(?:-static)?$")
# pread's offset is a signed off_t: /proc/PID/mem cannot be read at or above 2**63 (kernel space anyway).
_PREAD_LIMIT = 1 << 63
_PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread (no mm, no user memory)
_PAGEMAP_PRESENT = 1 << 63  # Documentation/admin-guide/mm/pagemap.rst: the page is in RAM ...
_PAGEMAP_SWAPPED = 1 << 62  # ... or in swap: either is read without asking the file's filesystem
_PAGEMAP_BATCH = 1 << 16  # pagemap entries read at once (512 KiB)
FUSE_ABSENT = ("a page of a file on a FUSE filesystem that is not in the target's memory: reading it would wait on "
               "that filesystem's server, which may never answer")


def parse_maps(text):
    """The mappings of a /proc/PID/maps text (str or bytes), sorted by start.

    The pathname is everything after the inode column with the column padding
    removed, so names with spaces and "(deleted)" survive; bytes are decoded
    like file names (surrogateescape).
    """
    if isinstance(text, (bytes, bytearray)):
        text = os.fsdecode(bytes(text))
    if not isinstance(text, str):
        raise ArgumentTypeError(f"parse_maps takes the text of a maps file (str or bytes), got {type(text).__name__}")
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


def fuse_devices(mountinfo):
    """The devices ("major:minor", decimal) of the FUSE mounts in a /proc/PID/mountinfo text (str or bytes).

    A line is `id parent major:minor root point options [optional...] - fstype source superoptions`;
    FUSE types are `fuse`, `fuseblk` and `fuse.NAME` (sshfs and friends).
    """
    if isinstance(mountinfo, (bytes, bytearray)):
        mountinfo = os.fsdecode(bytes(mountinfo))
    found = set()
    for line in mountinfo.split("\n"):
        fields = line.split(" ")
        if " - " not in line or len(fields) < 3:
            continue
        fstype = line.split(" - ", 1)[1].split(" ", 1)[0]
        if fstype in ("fuse", "fuseblk") or fstype.startswith("fuse."):
            found.add(fields[2])
    return found


def map_devices(text):
    """{(start, end): "major:minor" decimal} of the file-backed mappings in a /proc/PID/maps text."""
    if isinstance(text, (bytes, bytearray)):
        text = os.fsdecode(bytes(text))
    out = {}
    for line in text.split("\n"):
        fields = line.split(" ", 5)
        try:
            low, high = fields[0].split("-")
            major, minor = fields[3].split(":")
            inode = int(fields[4])
            key, dev = (int(low, 16), int(high, 16)), f"{int(major, 16)}:{int(minor, 16)}"
        except (ValueError, IndexError):
            continue  # parse_maps has already refused a damaged line
        if inode:
            out[key] = dev
    return out


def _check_pid(pid):
    pid = integer(pid, "pid")
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


def _elf_arch(head, what):
    """`arch` for a live process's executable header, None when it does not look like ELF."""
    kind = elf.ident(head)
    if kind is None or len(head) < 20:
        return None
    bits, order = kind
    if bits != 64:
        raise UnsupportedTargetError(f"{what} is a 32-bit process; only 64-bit x86-64 and aarch64 are supported")
    machine = int.from_bytes(head[18:20], "big" if order == ">" else "little")
    if machine not in elf.ARCH_OF_MACHINE or order != "<":
        raise UnsupportedTargetError(f"{what} runs machine {machine} ({elf.MACHINE_NAMES.get(machine, 'unknown')}) "
                                     "code; only x86-64 and aarch64 are supported")
    return elf.ARCH_OF_MACHINE[machine]


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
        self._fuse = None  # (start, end) of the mappings of files on FUSE, once the maps are read
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
            # With /proc/PID open, a missing entry is a process that exited (a zombie has no mem), not no process;
            # a kernel thread has no user memory, so its mem answers ESRCH while it runs.
            why = (self._gone() or self._kernel_thread()) if dir_fd is not None else None
            raise why or NoSuchProcessError(f"no such process: pid {self.pid}") from None
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

    def _stat_fields(self):
        """/proc/PID/stat's fields after the command name (state, ppid, ..., flags at 6), or [] once it is gone."""
        try:
            fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
            try:
                text = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            return []
        return text[text.rfind(b")") + 1:].split()  # the name in parentheses may hold spaces and ')'

    def _state(self):
        """The process state letter from /proc/PID/stat, or None once the process is gone."""
        fields = self._stat_fields()
        return fields[0].decode("ascii", "replace") if fields else None

    def _kernel_thread(self):
        """UnsupportedTargetError if the target is a kernel thread (PF_KTHREAD in its stat flags), else None."""
        fields = self._stat_fields()
        try:
            flags = int(fields[6])
        except (IndexError, ValueError):
            return None
        if not flags & _PF_KTHREAD:
            return None
        return UnsupportedTargetError(f"{self.description} is a kernel thread: it has no user memory to scan")

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
        fuse = self._fuse_devices()
        self._fuse = sorted(r for r, dev in map_devices(text).items() if dev in fuse) if fuse else []
        return found

    def _fuse_devices(self):
        """The target's FUSE mounts (its own mount namespace's), or an empty set when it cannot be told."""
        try:
            fd = os.open("mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
            try:
                return fuse_devices(_read_all(fd))
            finally:
                os.close(fd)
        except OSError:
            return set()

    # A page of a file on FUSE that is not in the target's page tables is read by asking the FUSE server; one
    # that never answers leaves the reader in uninterruptible sleep (not even SIGKILL ends it). So such pages
    # are never read: /proc/PID/pagemap says which pages are in memory (or swap) without faulting any in.

    def _fuse_overlaps(self, start, end):
        if self._fuse is None:
            self.mappings()
        return [(max(lo, start), min(hi, end)) for lo, hi in self._fuse if lo < end and start < hi]

    def _resident(self, start, end):
        """The page-aligned parts of [start, end) in memory or swap, per /proc/PID/pagemap ([] if unreadable)."""
        page = os.sysconf("SC_PAGE_SIZE")
        first, last = start // page, (end + page - 1) // page
        try:
            fd = os.open("pagemap", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self._dir)
        except OSError:
            return []
        out = []
        try:
            for batch in range(first, last, _PAGEMAP_BATCH):
                count = min(_PAGEMAP_BATCH, last - batch)
                raw = os.pread(fd, count * 8, batch * 8)
                for i in range(len(raw) // 8):
                    if int.from_bytes(raw[i * 8:i * 8 + 8], "little") & (_PAGEMAP_PRESENT | _PAGEMAP_SWAPPED):
                        lo, hi = max((batch + i) * page, start), min((batch + i + 1) * page, end)
                        if out and out[-1][1] == lo:
                            out[-1] = (out[-1][0], hi)
                        else:
                            out.append((lo, hi))
        except OSError:
            return []
        finally:
            os.close(fd)
        return out

    def _present(self, start, end):
        """[start, end) without the pages of FUSE files that are not in memory (see above)."""
        if end <= start:
            return []
        overlaps = self._fuse_overlaps(start, end)
        if not overlaps:
            return [(start, end)]
        out, pos = [], start
        for lo, hi in overlaps:
            if pos < lo:
                out.append((pos, lo))
            out.extend(self._resident(lo, hi))
            pos = hi
        if pos < end:
            out.append((pos, end))
        return out

    def _read(self, address, size):
        if address + size > _PREAD_LIMIT:
            raise unreadable(self, address, size, f"0x{max(address, _PREAD_LIMIT):x} is in kernel address space, "
                                                   "which /proc/PID/mem cannot read")
        for lo, hi in self._fuse_overlaps(address, address + size):
            resident, pos = self._resident(lo, hi), lo
            for r_lo, r_hi in resident:
                if r_lo > pos:
                    break
                pos = r_hi
            if pos < hi:
                raise unreadable(self, address, size, f"0x{pos:x} is {FUSE_ABSENT}")
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
                raise unreadable(self, address, size, why) from None
            parts.append(data)
            pos += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)
