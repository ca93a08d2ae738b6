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

import numpy as np

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


_FILE_ENTRY = np.dtype([("start", "<u8"), ("end", "<u8"), ("page", "<u8")])


@dataclass
class _FileEntries:
    """NT_FILE's file-backed ranges as columns: [start, end) maps `name_of(i)` from offset page * page_size.

    Columns, not a tuple per entry: a note may hold millions of entries (its
    24 bytes each are all it costs), and only those a segment meets are ever
    turned into Python objects."""

    start: np.ndarray
    end: np.ndarray
    page: np.ndarray
    page_size: np.ndarray
    name_lo: np.ndarray
    name_hi: np.ndarray
    names: list  # the names' bytes of each note, by note
    note: np.ndarray

    def name_of(self, i):
        note = self.names[int(self.note[i])]
        return os.fsdecode(bytes(note[int(self.name_lo[i]):int(self.name_hi[i])]))

    def offset_of(self, i):
        return int(self.page[i]) * int(self.page_size[i])


def _file_entries(desc, note):
    """NT_FILE's entries (`note` numbers the note) as columns, or None when the note does not add up."""
    if len(desc) < 16:
        return None
    count, page_size = struct.unpack_from("<QQ", desc, 0)
    if count > (len(desc) - 16) // _FILE_ENTRY.itemsize:
        return None
    table_end = 16 + count * _FILE_ENTRY.itemsize
    table = np.frombuffer(desc, _FILE_ENTRY, count, 16)
    names = desc[table_end:]
    nuls = np.flatnonzero(np.frombuffer(names, np.uint8) == 0)
    if len(nuls) + 1 < count:  # names are NUL-separated; the last may lack its NUL
        return None
    hi = np.append(nuls, len(names))[:count]
    lo = np.concatenate(([0], hi[:-1] + 1))[:count]
    keep = table["end"] > table["start"]
    return _FileEntries(table["start"][keep], table["end"][keep], table["page"][keep],
                        np.full(int(keep.sum()), page_size, np.uint64), lo[keep], hi[keep], [names],
                        np.full(int(keep.sum()), note, np.int64))


def _index_files(parts):
    """All notes' entries as one sorted list of disjoint ranges, each with its own file offset.

    Where entries overlap (never in a core the kernel or gdb writes), the one
    starting first keeps the overlap and a later one keeps only what lies past
    it, as a walk in address order would give. Built once, so cutting a
    segment is a binary search and a walk over the ranges it meets."""
    if not parts:
        return None
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in
           ("start", "end", "page", "page_size", "name_lo", "name_hi", "note")}
    order = np.lexsort((cat["end"], cat["start"]))
    cat = {f: v[order] for f, v in cat.items()}
    reach = np.maximum.accumulate(cat["end"])
    low = np.maximum(cat["start"], np.concatenate(([0], reach[:-1])).astype(np.uint64))
    keep = cat["end"] > low
    skip = low - cat["start"]  # bytes a range lost to the ones before it
    out = _FileEntries(low[keep], cat["end"][keep], cat["page"][keep], cat["page_size"][keep],
                       cat["name_lo"][keep], cat["name_hi"][keep], [n for p in parts for n in p.names],
                       cat["note"][keep])
    out.skip = skip[keep]
    return out


def _split(start, end, perms, entries):
    """The mappings of one segment, cut where NT_FILE's file-backed ranges (disjoint, sorted) begin and end."""
    out, pos = [], start
    if entries is not None:
        for i in range(int(np.searchsorted(entries.end, start, "right")), len(entries.start)):
            low, high = int(entries.start[i]), int(entries.end[i])
            if low >= end:
                break
            if low > pos:
                out.append(Mapping(pos, low, perms))
                pos = low
            high = min(high, end)
            if high > pos:
                offset = entries.offset_of(i) + int(entries.skip[i]) + (pos - low)
                out.append(Mapping(pos, high, perms, offset, entries.name_of(i)))
                pos = high
    if pos < end:
        out.append(Mapping(pos, end, perms))
    return out


def _used_end(pread, available):
    """Where the last byte a reader of this core uses ends, by its headers: the ELF header, the program headers,
    the section headers (section 0 may count the program headers: PN_XNUM) and the bytes of every segment it
    reads (p_offset + p_filesz). None while the headers lie past the `available` bytes that `pread(size, offset)` can give.

    A core this reader would refuse (not ELF64 little-endian, other program header sizes) uses its ELF
    header only: `_parse` then says why from those bytes."""
    head_size = elf.dtype("ELF header", 64, "<").itemsize
    if available < head_size:
        return None
    head = pread(head_size, 0)
    if elf.ident(head) != (64, "<"):
        return head_size
    eh = elf.header(head, 64, "<")
    phoff, shoff, phentsize = int(eh["phoff"]), int(eh["shoff"]), int(eh["phentsize"])
    shdr_size = elf.dtype("section headers", 64, "<").itemsize
    phdr_size = elf.dtype("program headers", 64, "<").itemsize
    section0 = None
    if shoff and (int(eh["phnum"]) == elf.XNUM or not int(eh["shnum"])):
        if shoff + shdr_size > available:
            return None
        section0 = elf.section_headers(pread(shdr_size, shoff), 1)[0]
    phnum, shnum, _ = elf.resolve_xnum(eh, section0)
    end = max(head_size, shoff + max(shnum, section0 is not None) * shdr_size if shoff else 0)
    if not phnum or phentsize != phdr_size:
        return end
    if phoff + phnum * phdr_size > available:
        return None
    table = elf.program_headers(pread(phnum * phdr_size, phoff), phnum)
    kind, offset, filesz, memsz = table["type"], table["offset"], table["filesz"], table["memsz"]
    # What `_parse` reads: a PT_LOAD's p_filesz up to its p_memsz, a PT_NOTE's up to _MAX_NOTES; nothing of the
    # other types (a PT_NULL claiming 2**64 bytes must not make the whole stream needed).
    size = np.where((kind == elf.PT_LOAD) & (memsz > 0), np.minimum(filesz, memsz),
                    np.where(kind == elf.PT_NOTE, np.minimum(filesz, _MAX_NOTES), 0))
    # p_offset + size, saturated at 2**64 - 1 (past any stream) rather than wrapped.
    ends = np.where(size > 0, offset + np.minimum(size, ~offset), 0)
    return max(end, phoff + phnum * phdr_size, int(ends.max()))


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

    _size = 0  # bytes in the (decompressed) file
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
        """The fd of a temporary file holding the decompressed core; streamed, never whole in memory.

        Only as many bytes as the core's headers use (`_used_end`) are
        decompressed: a small stream can expand to gigabytes past its last
        segment (5 MB of gzip: 5 GB, 33 s, in RAM where TMPDIR is tmpfs).
        """
        tmp = tempfile.TemporaryFile(prefix="vmctx-core-")
        self._fds.append(tmp)
        written, used = 0, None

        def pread(size, offset):  # the decompressed bytes so far
            tmp.flush()
            return os.pread(tmp.fileno(), max(0, min(size, written - offset)), offset) if offset < written else b""

        try:
            with open(fd, "rb", closefd=False) as raw, gzip.GzipFile(fileobj=raw) as stream:
                # read1, not read: a cut stream raises EOFError, and read() would drop what it had gathered.
                while (want := DEFAULT_CHUNK if used is None else min(DEFAULT_CHUNK, used - written)) > 0:
                    data = stream.read1(want)
                    if not data:
                        break
                    tmp.write(data)
                    written += len(data)
                    if used is None:
                        used = _used_end(pread, written)
                if used is not None and (written > used or written == used and stream.read1(1)):
                    tmp.truncate(used)  # the first chunk, read before the headers were known, may go past
                    written = used
                    self._damage.append(f"the gzip stream goes on past the {used:,} bytes the core's headers use "
                                        "(its segments, notes and headers): the rest was not decompressed")
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

    def _within(self, field, offset, what, size, file_size):
        """CoreFileError unless [offset, offset + size) is inside the file: `field` names the header field that
        gave the offset, `what` what lies there. Python integers: no claim, however large, overflows here."""
        if offset + size > file_size:
            raise self._error(f"damaged ELF header: {field} = {offset:#x}: {what} there would end at "
                              f"{offset + size:#x}, past the end of the file ({file_size} bytes)")

    def _pread(self, size, offset):
        """Up to `size` bytes at `offset` (fewer only at end of file, and none past it: an offset the OS cannot
        take, 2**63 and more, is past every file)."""
        parts = []
        if offset >= self._size:
            return b""
        size = min(size, self._size - offset)
        while size > 0:
            data = os.pread(self._fd, size, offset)
            if not data:
                break
            parts.append(data)
            size -= len(data)
            offset += len(data)
        return b"".join(parts)

    def _parse(self):
        file_size = self._size = os.fstat(self._fd).st_size
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
        xnum = int(eh["phnum"]) == elf.XNUM
        if xnum:  # more than 65534 segments: the real count is section 0's sh_info
            shdr_size = elf.dtype("section headers", 64, "<").itemsize
            self._within("e_shoff", shoff, f"section header 0 ({shdr_size} bytes, whose sh_info counts the program "
                         "headers: e_phnum is PN_XNUM)", shdr_size, file_size)
            section0 = elf.section_headers(self._pread(shdr_size, shoff), 1)[0]
        phnum = elf.resolve_xnum(eh, section0)[0]
        phdr_size = elf.dtype("program headers", 64, "<").itemsize
        if phnum and phentsize != phdr_size:
            raise self._error(f"program headers of {phentsize} bytes; ELF64 has {phdr_size}")
        if phnum and phoff >= file_size:
            # Checked before any read: the OS takes no offset of 2**63 or more. A count larger than the file is
            # caught below: _pread reads no further than the file's end (never 240 GB).
            count = "section header 0's sh_info" if xnum else "e_phnum"
            self._within("e_phoff", phoff, f"{phnum} program headers ({count}) of {phdr_size} bytes",
                         phnum * phdr_size, file_size)
        raw = self._pread(phnum * phdr_size, phoff)
        if len(raw) < phnum * phdr_size:
            raise self._error(f"truncated: program headers at file offset {phoff} need {phnum * phdr_size} bytes, "
                              f"file has {file_size}")
        table = elf.program_headers(raw, phnum).tolist()
        shared = self._shared_bytes(table, file_size)
        segments, entries = [], []
        notes = cut_notes = cut_loads = 0
        for index, (p_type, flags, offset, vaddr, _, filesz, memsz, align) in enumerate(table):
            filesz = min(filesz, memsz) if p_type == elf.PT_LOAD else filesz
            present = max(0, min(filesz, file_size - offset))
            truncated = (f"truncated core file: segment {index} at file offset {offset} needs {filesz} bytes, "
                         f"file has {file_size}")
            if index in shared:
                present, truncated = 0, (f"segment {index}'s bytes (file offset {offset}) are segment "
                                         f"{shared[index]}'s too: a core holds each byte once, so they are not read")
            if p_type == elf.PT_NOTE:
                notes += 1
                if present < filesz:
                    cut_notes += 1
                    self._damage.append(f"truncated core file: the notes (segment {index}) at file offset {offset} "
                                        f"need {filesz} bytes, file has {file_size}" if index not in shared
                                        else truncated)
                self._read_notes(self._pread(min(present, _MAX_NOTES), offset), 8 if align == 8 else 4, entries)
            elif p_type == elf.PT_LOAD and memsz and vaddr + memsz <= 1 << 64:
                perms = "".join(c if flags & bit else "-"
                                for c, bit in (("r", elf.PF_R), ("w", elf.PF_W), ("x", elf.PF_X)))
                segments.append((_Segment(vaddr, vaddr + memsz, offset, vaddr + present, vaddr + filesz, truncated),
                                 perms + "p"))
                cut_loads += present < filesz
        if shared:
            self._damage.append(f"{len(shared)} segments claim file bytes another segment holds (a core never "
                                "shares them): their memory is reported missing, not read again")
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
        index = self._files = _index_files(entries)
        self._mappings = [m for s, perms in segments for m in _split(s.start, s.end, perms, index)]
        self._missing = []
        for s in self._segments:
            if s.data_end < s.file_end:
                self._missing.append((s.data_end, s.file_end, s.truncated))
            if s.file_end < s.end:
                self._missing.append((s.file_end, s.end, "not in the core file"))

    @staticmethod
    def _shared_bytes(table, file_size):
        """{index: the earlier segment} for each segment whose file bytes overlap another's.

        A core holds each byte once; segments that alias the same bytes would
        make reading every segment cost more than the file holds (60,000
        segments over one 1 MB range: 60 GB). In file order, the first keeps them."""
        spans = sorted((offset, index, min(filesz, memsz) if p_type == elf.PT_LOAD else filesz)
                       for index, (p_type, _, offset, _, _, filesz, memsz, _) in enumerate(table)
                       if p_type in (elf.PT_LOAD, elf.PT_NOTE) and offset < file_size)
        shared, reach, owner = {}, 0, None
        for offset, index, size in spans:
            size = min(size, file_size - offset)
            if size <= 0:
                continue
            if offset < reach:
                shared[index] = owner
            else:
                reach, owner = offset + size, index
        return shared

    def _read_notes(self, data, align, entries):
        prstatus_pid = None
        for name, ntype, desc in elf.notes(data, "<", align):
            if name != b"CORE":
                continue
            if ntype == _NT_FILE:
                found = _file_entries(desc, len(entries))
                if found is not None:
                    entries.append(found)
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

    def file_at(self, address):
        self._check_open()
        files = self._files
        if files is None or not 0 <= address < 1 << 64:
            return None
        i = int(np.searchsorted(files.end, np.uint64(address), "right"))
        if i >= len(files.start) or not int(files.start[i]) <= address:
            return None
        return files.name_of(i), files.offset_of(i) + int(files.skip[i]) + address - int(files.start[i])

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
        for k in range(i, len(self._segments)):  # by index: a slice would copy the rest of the list per call
            s = self._segments[k]
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
