"""An ELF core file (x86-64 or aarch64, 64-bit little-endian), gzip-compressed or not, as a MemorySource.

PT_LOAD segments are the memory; the notes name the files behind them
(NT_FILE), the process (NT_PRPSINFO) and its auxiliary vector (NT_AUXV).
What the file does not hold is reported by `missing()` rather than refused,
so the rest of a damaged core stays usable.
"""

import bisect
import gzip
import os
import stat
import struct
import tempfile
import zlib
from dataclasses import dataclass

from ..errors import AccessDeniedError, ArgumentTypeError, CoreFileError
from . import elf
from .source import DEFAULT_CHUNK, Mapping, MemorySource, unreadable

__all__ = ["CoreFileSource"]

_GZIP_MAGIC = b"\x1f\x8b"
_ET_CORE = 4
_NT_PRSTATUS, _NT_PRPSINFO, _NT_AUXV, _NT_FILE = 1, 3, 6, 0x46494C45
_ET_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
# Offsets in the 64-bit Linux note layouts (same on x86-64 and aarch64): elf_prpsinfo's pr_pid,
# pr_fname[16] and pr_psargs[80]; elf_prstatus's pr_pid.
_PRPSINFO_PID, _PRPSINFO_FNAME, _PRPSINFO_PSARGS, _PRSTATUS_PID = 24, 40, 56, 32
# A note segment larger than this is damage, not notes; reading it whole would only waste memory.
_MAX_NOTES = 256 << 20


@dataclass(frozen=True)
class _Segment:
    """A PT_LOAD: [start, data_end) has bytes in the file at `offset`; the rest of [start, end) does not."""

    start: int
    end: int
    offset: int
    data_end: int
    file_end: int  # where the bytes would end if the file were whole (p_filesz)
    truncated: str  # the reason for [data_end, file_end)


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
        head_size = elf.dtype("ELF header", 64, "<").itemsize
        head = self._pread(head_size, 0)
        kind = elf.ident(head)
        if kind is None:
            raise self._error("not an ELF file" + (" (it is empty)" if not head else ""))
        bits, order = kind
        if bits != 64:
            raise self._error("a 32-bit ELF; only 64-bit cores are supported" if bits == 32
                              else f"not a valid ELF file (class {head[4]})")
        if order != "<":
            raise self._error("big-endian; only little-endian cores are supported" if order == ">"
                              else f"not a valid ELF file (data encoding {head[5]})")
        if len(head) < head_size:
            raise self._error(f"truncated: the ELF header needs {head_size} bytes, file has {file_size}")
        eh = elf.header(head, 64, "<")
        e_type, machine = int(eh["type"]), int(eh["machine"])
        phoff, shoff, phentsize = int(eh["phoff"]), int(eh["shoff"]), int(eh["phentsize"])
        if e_type != _ET_CORE:
            raise self._error(f"not a core file ({_ET_NAMES.get(e_type, f'type {e_type}')})")
        if machine not in elf.ARCH_OF_MACHINE:
            raise self._error(f"machine {machine} ({elf.MACHINE_NAMES.get(machine, 'unknown')}) is not supported; "
                              "only x86-64 and aarch64 are")
        self.arch = elf.ARCH_OF_MACHINE[machine]
        section0 = None
        if int(eh["phnum"]) == elf.XNUM:  # more than 65534 segments: the real count is section 0's sh_info
            shdr_size = elf.dtype("section headers", 64, "<").itemsize
            raw = self._pread(shdr_size, shoff)
            if len(raw) < shdr_size:
                raise self._error(f"truncated: section header 0 at file offset {shoff} needs {shdr_size} bytes, "
                                  f"file has {file_size}")
            section0 = elf.section_headers(raw, 1)[0]
        phnum = elf.resolve_xnum(eh, section0)[0]
        phdr_size = elf.dtype("program headers", 64, "<").itemsize
        if phnum and phentsize != phdr_size:
            raise self._error(f"program headers of {phentsize} bytes; ELF64 has {phdr_size}")
        raw = self._pread(phnum * phdr_size, phoff)
        if len(raw) < phnum * phdr_size:
            raise self._error(f"truncated: program headers at file offset {phoff} need {phnum * phdr_size} bytes, "
                              f"file has {file_size}")
        table = elf.program_headers(raw, phnum).tolist()
        segments, entries = [], []
        notes = cut_notes = cut_loads = 0
        for index, (p_type, flags, offset, vaddr, _, filesz, memsz, align) in enumerate(table):
            filesz = min(filesz, memsz) if p_type == elf.PT_LOAD else filesz
            present = max(0, min(filesz, file_size - offset))
            if p_type == elf.PT_NOTE:
                notes += 1
                if present < filesz:
                    cut_notes += 1
                    self._damage.append(f"truncated core file: the notes (segment {index}) at file offset {offset} "
                                        f"need {filesz} bytes, file has {file_size}")
                self._read_notes(self._pread(min(present, _MAX_NOTES), offset), 8 if align == 8 else 4, entries)
            elif p_type == elf.PT_LOAD and memsz and vaddr + memsz <= 1 << 64:
                perms = "".join(c if flags & bit else "-"
                                for c, bit in (("r", elf.PF_R), ("w", elf.PF_W), ("x", elf.PF_X)))
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
        for name, ntype, desc in elf.notes(data, "<", align):
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
                raise unreadable(self, address, size, f"0x{pos:x} is in no segment of the core file")
            if pos >= s.data_end:
                why = s.truncated if pos < s.file_end else "not in the core file"
                raise unreadable(self, address, size, f"0x{pos:x}: {why}")
            want = min(end, s.data_end) - pos
            try:
                data = self._pread(want, s.offset + (pos - s.start))
            except OSError as e:
                raise unreadable(self, address, size, f"reading the core file failed: {e.strerror}") from None
            if len(data) < want:
                raise unreadable(self, address, size, "the core file shrank while being read")
            parts.append(data)
            pos += want
        return parts[0] if len(parts) == 1 else b"".join(parts)
