"""Which file is behind each mapping of a target, and which file on this machine stands for it.

A live process names its files (/proc/PID/maps), and so does a core with an
NT_FILE note. A core without one (qemu-user writes such cores, so do some
crash handlers and `coredump_filter` settings) still holds the auxiliary
vector (NT_AUXV): AT_PHDR is where the executable's program headers are in
memory, which gives its load address and segments; its dynamic section's
DT_DEBUG points at the dynamic linker's `r_debug`, whose `link_map` list
names every shared object and where it is loaded. These are read from the
core's own bytes (writable memory, which every core keeps) and put names on
its segments, as gdb does.

`exe` and `sysroot` supply files the core does not carry (gdb's `file` and
`set sysroot`). A supplied executable is compared with every page the core
holds of its read-only segments before it is used; one that differs is
refused, naming the first differing offset.
"""

import os
from dataclasses import dataclass, field

from ..errors import ArgumentTypeError, FileMismatchError
import numpy as np

from .elf import (ARCH_OF_MACHINE, AT_BASE, AT_ENTRY, AT_EXECFN, AT_PAGESZ, AT_PHDR, AT_PHNUM, DT_DEBUG, DYN, LINK_MAP,
                  MACHINE_NAMES, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_PHDR, R_DEBUG_MAP, dtype, dynamic_entries,
                  elf_header, program_header_list)
from .images import FIRST_PAGE, NO_FIRST_PAGE, compare_file
from ..errors import UnreadableMemoryError
from .source import Mapping, open_regular

__all__ = ["LoadedFiles", "file_mappings"]

PHDR_SIZE = dtype("program headers", 64, "<").itemsize
STRING_MAX = 4096
LINK_MAP_MAX = 4096  # objects followed in the dynamic linker's list: more is a cycle or damage
DYNAMIC_MAX = 1 << 16
STANDARD_PHOFF = 64  # where program headers follow the ELF header in every linker's output
COMPARE_PAGE = 4096  # bytes read for an object's ELF and program headers


@dataclass
class LoadedFiles:
    """The target's mappings with their files' names, notes on how they were found, and local copies."""

    mappings: list
    notes: list = field(default_factory=list)
    exe: str = None  # the target's name for its executable, when known
    exe_file: str = None  # the file given for it
    sysroot: str = None
    verified: dict = field(default_factory=dict)  # target name -> (local file, how the loader checked it)

    def local(self, path):
        """The file on this machine to read for the target's `path`: the given executable, under the sysroot, or
        the path itself."""
        if self.exe_file and path == self.exe:
            return self.exe_file
        if self.sysroot:
            return os.path.join(self.sysroot, path.lstrip("/"))
        return path


def file_mappings(src, *, exe=None, sysroot=None):
    """LoadedFiles for `src`: its own file names, or for a core without them, the loader's."""
    for value, what in ((exe, "exe"), (sysroot, "sysroot")):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ArgumentTypeError(f"{what} must be a path, got {type(value).__name__}")
    exe = os.fspath(exe) if exe is not None else None
    sysroot = os.fspath(sysroot) if sysroot is not None else None
    if exe is not None and not os.path.isfile(exe):
        raise FileMismatchError(f"the executable given ({exe}) is not a readable regular file", path=exe)
    if sysroot is not None and not os.path.isdir(sysroot):
        raise FileMismatchError(f"the sysroot given ({sysroot}) is not a directory", path=sysroot)
    mappings = src.mappings()
    loaded = LoadedFiles(mappings, exe_file=exe, sysroot=sysroot)
    if src.file_names:
        if exe is not None:
            loaded.exe = _named_executable(src, mappings)
            if loaded.exe is None:
                loaded.notes.append(f"the executable given ({exe}) is not used: no mapping of the target holds its "
                                    "entry point")
            else:
                _check_exe(src, exe, [m for m in mappings if m.path == loaded.exe])
        return loaded
    _Loader(src, loaded).run()
    return loaded


def _named_executable(src, mappings):
    """The path of the mapping holding the entry point (AT_ENTRY), or None."""
    entry = src.auxv.get(AT_ENTRY)
    for m in mappings:
        if entry is not None and m.path and m.start <= entry < m.end:
            return m.path
    return None


def _check_exe(src, path, mappings):
    """The file offsets of the pages compared; FileMismatchError unless `path` holds the target's bytes where they
    can be compared."""
    with open_regular(path) as f:
        mismatch, compared = compare_file(src, f, mappings)
    if mismatch is not None:
        offset, address = mismatch
        raise FileMismatchError(f"the executable given ({path}) is not the one in {src.description}: its byte at "
                                f"file offset {offset:#x} differs from the target's at {address:#x}",
                                path=path, offset=offset, address=address)
    return compared


class _Loader:
    """Names for a core's segments from its auxiliary vector and the dynamic linker's list."""

    def __init__(self, src, loaded):
        self.src, self.loaded = src, loaded
        self.page = src.auxv.get(AT_PAGESZ) or 4096
        self.objects = []  # (name, bias, PT_LOAD headers)
        self.interp = None

    def note(self, text):
        self.loaded.notes.append(text)

    def run(self):
        src = self.src
        why = src.file_names_why or "the core names no files"
        if AT_PHDR not in src.auxv:
            self.note(f"the files behind its mappings are unknown: {why}, and it has no auxiliary vector")
            return
        exe = self._executable()
        if exe is None:
            return
        name, bias, headers = exe
        self.loaded.exe = name
        self.objects.append((name, bias, [p for p in headers if p.type == PT_LOAD]))
        self._shared_objects(bias, headers)
        self.loaded.mappings = _label(self.loaded.mappings, self.objects, self.page)
        names = ", ".join(os.path.basename(n) for n, _, _ in self.objects[:6])
        more = f" and {len(self.objects) - 6} more" if len(self.objects) > 6 else ""
        self.note(f"{why}: file names from its auxiliary vector and the dynamic linker's list "
                  f"({len(self.objects)} objects: {names}{more})")

    def _read(self, address, size):
        try:
            return self.src.read(address, size)
        except UnreadableMemoryError:
            return None

    def _string(self, address):
        out = b""
        while len(out) < STRING_MAX:
            data = self._read(address + len(out), 64)
            if data is None:
                # The string may end close to the end of its mapping: read what is left byte by byte.
                data = self._read(address + len(out), 1)
                if data is None:
                    return None
            out += data
            if b"\0" in data:
                return os.fsdecode(out.split(b"\0")[0])
        return None

    def _executable(self):
        src, loaded = self.src, self.loaded
        phdr_at, count = src.auxv[AT_PHDR], src.auxv.get(AT_PHNUM, 0)
        data = self._read(phdr_at, count * PHDR_SIZE)
        name = self._string(src.auxv[AT_EXECFN]) if AT_EXECFN in src.auxv else None
        name = name or (src.command.split()[0] if src.command else "the executable")
        file_headers = None
        if loaded.exe_file:
            with open_regular(loaded.exe_file) as f:
                head = f.read(COMPARE_PAGE)
            header = elf_header(head)
            if header is None:
                raise FileMismatchError(f"the executable given ({loaded.exe_file}) is not a 64-bit little-endian "
                                        "ELF file", path=loaded.exe_file)
            if ARCH_OF_MACHINE.get(header[1]) != src.arch:
                raise FileMismatchError(f"the executable given ({loaded.exe_file}) is not the one in "
                                        f"{src.description}: it is for machine {header[1]} "
                                        f"({MACHINE_NAMES.get(header[1], 'unknown')}), the core for {src.arch} "
                                        "(e_machine, file offset 0x12)", path=loaded.exe_file, offset=0x12)
            _, _, _, phoff, _, phnum = header
            with open_regular(loaded.exe_file) as f:
                f.seek(phoff)
                raw = f.read(phnum * PHDR_SIZE)
            file_headers = (phoff, program_header_list(raw, phnum), raw)
        if data is None and file_headers is None:
            self.note(f"the files behind its mappings are unknown: {src.file_names_why}, and the executable's "
                      f"program headers (at {phdr_at:#x}, from its auxiliary vector) are not in the core; give the "
                      "executable with --exe")
            return None
        headers = program_header_list(data, count) if data is not None else file_headers[1]
        phoff = file_headers[0] if file_headers else STANDARD_PHOFF
        if data is not None and file_headers is not None and data != file_headers[2]:
            first = next((i for i, (a, b) in enumerate(zip(data, file_headers[2])) if a != b),
                         min(len(data), len(file_headers[2])))
            raise FileMismatchError(f"the executable given ({loaded.exe_file}) is not the one in {src.description}: "
                                    f"its byte at file offset {phoff + first:#x} (in its program headers) differs from "
                                    f"the target's at {phdr_at + first:#x}", path=loaded.exe_file,
                                    offset=phoff + first, address=phdr_at + first)
        bias = _bias(headers, phdr_at, phoff)
        if bias is None:
            self.note(f"the executable's program headers at {phdr_at:#x} name no loadable segment: files unknown")
            return None
        if loaded.exe_file:
            name = name if name != "the executable" else loaded.exe_file
            loaded.exe = name
            segments = [Mapping(bias + (p.vaddr & -self.page), bias + p.vaddr + p.filesz, p.perms + "p",
                                p.offset & -self.page, name) for p in headers if p.type == PT_LOAD and p.filesz]
            pages = _check_exe(self.src, loaded.exe_file, _pieces(loaded.mappings, segments))
            entries = self._check_dynamic(loaded.exe_file, headers, bias)
            # The file named by the user is trusted on its first page (headers, build-id), or on its dynamic
            # section as the loader relocated it and its entry point: a section's addresses move with the size of
            # everything laid out before it, so another build does not reproduce them (a qemu-user core holds no
            # file page at all). A file found by its path or under --sysroot needs its first page (images.py).
            if FIRST_PAGE in pages or entries:
                how = ", ".join(filter(None, (f"{len(pages)} page{'s' * (len(pages) != 1)} of its code and headers"
                                              if pages else "", f"its dynamic section ({entries} entries, as the "
                                              "loader relocated them) and entry point" if entries else "")))
                if FIRST_PAGE not in pages:
                    how += f" (the core {NO_FIRST_PAGE})"
                loaded.verified[name] = (loaded.exe_file, f"the executable given, checked against the core: {how}")
            else:
                what = (f"the core {NO_FIRST_PAGE} nor its dynamic section" if pages else
                        "the core holds none of its bytes that a load leaves as they are")
                self.note(f"the executable given ({loaded.exe_file}) cannot be checked: {what}; it names the "
                          "segments, but gives no version or symbols")
        self.interp = _interpreter(loaded.exe_file, headers, self._read, bias)
        return name, bias, headers

    def _check_dynamic(self, path, headers, bias):
        """Entries of the executable's dynamic section the core holds that match `path`'s (0: none held).

        The loader rewrites pointer entries in place (value + load bias) and
        DT_DEBUG; every other word must be the file's, and AT_ENTRY its entry
        point plus the bias. FileMismatchError names the first that is not.
        """
        with open_regular(path) as f:
            head = f.read(COMPARE_PAGE)
        entry = self.src.auxv.get(AT_ENTRY)
        e_entry = elf_header(head)[2]
        if entry is not None and entry != e_entry + bias:
            raise FileMismatchError(f"the executable given ({path}) is not the one in {self.src.description}: its "
                                    f"entry point {e_entry:#x} (e_entry, file offset 0x18) + load bias {bias:#x} is "
                                    f"not the core's AT_ENTRY {entry:#x}", path=path, offset=0x18, address=entry)
        dynamic = next((p for p in headers if p.type == PT_DYNAMIC), None)
        theirs = None if dynamic is None else self._read(bias + dynamic.vaddr, dynamic.filesz)
        if theirs is None:
            return 0
        with open_regular(path) as f:
            f.seek(dynamic.offset)
            ours = f.read(dynamic.filesz)
        compared = 0
        pairs = zip(np.frombuffer(ours[: len(ours) // 16 * 16], DYN).tolist(),
                    np.frombuffer(theirs[: len(theirs) // 16 * 16], DYN).tolist())
        for i, ((tag, value), (their_tag, their_value)) in enumerate(pairs):
            if tag != their_tag or not (value == their_value or value + bias == their_value or tag == DT_DEBUG):
                at = i * DYN.itemsize + (8 if tag == their_tag else 0)
                raise FileMismatchError(f"the executable given ({path}) is not the one in {self.src.description}: its "
                                        f"byte at file offset {dynamic.offset + at:#x} (in its dynamic section) differs "
                                        f"from the target's at {bias + dynamic.vaddr + at:#x}", path=path,
                                        offset=dynamic.offset + at, address=bias + dynamic.vaddr + at)
            compared += 1
            if tag == 0:
                break
        return compared

    def _shared_objects(self, bias, headers):
        dynamic = next((p for p in headers if p.type == PT_DYNAMIC), None)
        if dynamic is None:
            return  # a static executable: no dynamic linker, no other objects
        data = self._read(bias + dynamic.vaddr, min(dynamic.memsz, DYNAMIC_MAX))
        if data is None:
            self.note("the executable's dynamic section is not in the core: shared objects unknown")
            return
        r_debug = dict(dynamic_entries(data)).get(DT_DEBUG)
        head = self._read(r_debug + R_DEBUG_MAP, 8) if r_debug else None
        if head is None:
            self.note("the dynamic linker's r_debug is not in the core: shared objects unknown")
            return
        node, seen = int.from_bytes(head, "little"), set()
        while node and node not in seen and len(seen) < LINK_MAP_MAX:
            seen.add(node)
            entry = self._read(node, LINK_MAP.itemsize)
            if entry is None:
                self.note(f"the dynamic linker's list is cut at {node:#x} (not in the core)")
                return
            l_addr, l_name, _, l_next, _ = np.frombuffer(entry, LINK_MAP, 1)[0].tolist()
            name = self._string(l_name) if l_name else None
            if not name and l_addr and l_addr == self.src.auxv.get(AT_BASE):
                name = self.interp  # the dynamic linker's own name lives in the executable's PT_INTERP
            if name:
                found = self._object_headers(name, l_addr)
                if found is not None:
                    self.objects.append((name, l_addr, found))
            node = l_next

    def _object_headers(self, name, bias):
        """The PT_LOAD headers of a shared object loaded at `bias`: from its ELF header in memory, else its file
        (under the sysroot), which must be for the core's machine."""
        head = self._read(bias, COMPARE_PAGE)
        header = elf_header(head) if head is not None else None
        source = head
        if header is None:
            local = self.loaded.local(name)
            try:
                with open_regular(local) as f:
                    source = f.read(COMPARE_PAGE)
            except OSError:
                return None
            header = elf_header(source)
            if header is None:
                return None
            if ARCH_OF_MACHINE.get(header[1]) != self.src.arch:
                self.note(f"{local} (for {name}) is for machine {header[1]} "
                          f"({MACHINE_NAMES.get(header[1], 'unknown')}), not the core's {self.src.arch}: not used"
                          + ("" if self.loaded.sysroot else "; give the target's files with --sysroot"))
                return None
        _, _, _, phoff, _, phnum = header
        if phoff + phnum * PHDR_SIZE > len(source):
            return None
        return [p for p in program_header_list(source[phoff:], phnum) if p.type == PT_LOAD]


def _interpreter(path, headers, read, bias):
    """The dynamic linker's name from the executable's PT_INTERP (in memory, else in `path`), or None."""
    interp = next((p for p in headers if p.type == PT_INTERP), None)
    if interp is None:
        return None
    data = read(bias + interp.vaddr, interp.filesz)
    if data is None and path:
        with open_regular(path) as f:
            f.seek(interp.offset)
            data = f.read(interp.filesz)
    return os.fsdecode(data.split(b"\0")[0]) if data else None


def _bias(headers, phdr_at, phoff):
    """The load bias: where the program headers are in memory minus where the file says they go."""
    for p in headers:
        if p.type == PT_PHDR:
            return phdr_at - p.vaddr
    for p in headers:
        if p.type == PT_LOAD and p.offset <= phoff < p.offset + p.filesz:
            return phdr_at - (p.vaddr + phoff - p.offset)
    return None


def _segments(objects, page):
    out = []
    for name, bias, headers in objects:
        for p in headers:
            if p.type == PT_LOAD and p.filesz:
                start = bias + (p.vaddr & -page)
                out.append(Mapping(start, bias + p.vaddr + p.filesz, p.perms + "p", p.offset & -page, name))
    return sorted(out, key=lambda m: m.start)


def _pieces(mappings, segments):
    """The parts of the target's `mappings` that `segments` (named file ranges) cover, with the file's name
    and offset; each with the target's permissions."""
    out = []
    for s in segments:
        for m in mappings:
            low, high = max(m.start, s.start), min(m.end, s.end)
            if low < high:
                out.append(Mapping(low, high, m.perms, s.offset + (low - s.start), s.path))
    return out


def _label(mappings, objects, page):
    """`mappings` cut where the objects' segments begin and end, the covered parts named by their file."""
    segments = _segments(objects, page)
    out = []
    for m in mappings:
        cuts = sorted({m.start, m.end} | {x for s in segments for x in (s.start, s.end) if m.start < x < m.end})
        for low, high in zip(cuts, cuts[1:]):
            owner = next((s for s in segments if s.start <= low and high <= s.end), None)
            if owner is None:
                out.append(Mapping(low, high, m.perms, m.offset, m.path))
            else:
                out.append(Mapping(low, high, m.perms, owner.offset + (low - owner.start), owner.path))
    return out
