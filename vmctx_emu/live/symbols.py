"""Name an address inside a mapped ELF file the way gdb's `info symbol` does: symbol + offset, section.

A scanner knows a pointer's mapping (start, file offset, path); this module
turns that into "SYMBOL + 0x10 in section .data.rel.ro of libfoo.so" from the
file's own `.symtab`/`.dynsym`, so no debugger is needed. Only the ELF, program
and section headers and the symbol and string tables are read (`os.pread`),
never the whole file. Files are cached per (path, device, inode, mtime, size),
so a scan naming many pointers parses each library once.

Errors: a file that is missing, unreadable or not ELF gives None (nothing to
name with); an ELF file with damaged headers or tables raises
`SymbolFileError`; `name_address` turns both into None so callers fall back.
"""

import bisect
import collections
import functools
import os
import re
import stat
import struct
import threading
from typing import NamedTuple

import numpy as np

from ..errors import ArgumentTypeError, SymbolFileError

__all__ = ["ElfSymbols", "SymbolHit", "name_address", "demangle"]

_SHT_SYMTAB, _SHT_STRTAB, _SHT_NOBITS, _SHT_DYNSYM = 2, 3, 8, 11
_SHF_ALLOC, _SHF_TLS = 0x2, 0x400
_PT_LOAD, _PT_NOTE, _NT_GNU_BUILD_ID = 1, 4, 3
_MAX_NOTES = 1 << 16  # a build-id note is ~36 bytes; larger note segments are skipped, not read
_XNUM = 0xFFFF  # e_phnum / e_shstrndx escape: the real value is in section header 0
_SHN_LORESERVE = 0xFF00
_KEPT_TYPES = (1, 2, 10)  # STT_OBJECT, STT_FUNC, STT_GNU_IFUNC; STT_NOTYPE only with a size
_CACHE_SIZE = 32

_EHDR = {64: [("type", "u2"), ("machine", "u2"), ("version", "u4"), ("entry", "u8"), ("phoff", "u8"),
              ("shoff", "u8"), ("flags", "u4"), ("ehsize", "u2"), ("phentsize", "u2"), ("phnum", "u2"),
              ("shentsize", "u2"), ("shnum", "u2"), ("shstrndx", "u2")]}
_EHDR[32] = [(n, "u4" if t == "u8" else t) for n, t in _EHDR[64]]
_PHDR = {64: [("type", "u4"), ("flags", "u4"), ("offset", "u8"), ("vaddr", "u8"), ("paddr", "u8"),
              ("filesz", "u8"), ("memsz", "u8"), ("align", "u8")],
         32: [("type", "u4"), ("offset", "u4"), ("vaddr", "u4"), ("paddr", "u4"), ("filesz", "u4"),
              ("memsz", "u4"), ("flags", "u4"), ("align", "u4")]}
_SHDR = {64: [("name", "u4"), ("type", "u4"), ("flags", "u8"), ("addr", "u8"), ("offset", "u8"), ("size", "u8"),
              ("link", "u4"), ("info", "u4"), ("addralign", "u8"), ("entsize", "u8")]}
_SHDR[32] = [(n, "u4") for n, _ in _SHDR[64]]
_SYM = {64: [("name", "u4"), ("info", "u1"), ("other", "u1"), ("shndx", "u2"), ("value", "u8"), ("size", "u8")],
        32: [("name", "u4"), ("value", "u4"), ("size", "u4"), ("info", "u1"), ("other", "u1"), ("shndx", "u2")]}


class SymbolHit(NamedTuple):
    """One symbol covering an address: `raw` as in the table, `name` demangled on first use (it costs more)."""

    raw: str
    offset: int  # address - value
    section: str | None
    value: int
    size: int

    @property
    def name(self):
        return demangle(self.raw)


class _Reader:
    """Bounded positional reads that report a short file as damage, never as a short bytes object."""

    def __init__(self, fd, size, path):
        self.fd, self.size, self.path = fd, size, path

    def read(self, offset, size, what):
        if offset < 0 or size < 0 or offset + size > self.size:
            raise SymbolFileError(f"{self.path}: {what} at {offset:#x} ({size} bytes) is past the end of the "
                                  f"file ({self.size} bytes)")
        data = os.pread(self.fd, size, offset)
        if len(data) != size:
            raise SymbolFileError(f"{self.path}: {what} at {offset:#x}: file shrank while being read")
        return data

    def table(self, offset, count, entsize, fields, order, what):
        dtype = np.dtype([(n, order + t) for n, t in fields])
        if not count:
            return np.zeros(0, dtype)
        if entsize is not None and entsize != dtype.itemsize:
            raise SymbolFileError(f"{self.path}: {what} entries are {entsize} bytes, expected {dtype.itemsize}")
        return np.frombuffer(self.read(offset, count * dtype.itemsize, what), dtype)


class ElfSymbols:
    """Defined symbols, allocated sections and loadable segments of one ELF file, sorted for bisection.

    Build with `ElfSymbols.open(path)`. Addresses are the file's own virtual
    addresses (what nm, readelf and `gdb FILE` print); `lookup_file_offset` and
    `name_address` convert from what a memory scan has.
    """

    def __init__(self, path, elf):
        self.path, self.bits, self.build_id, self.tables = path, elf.bits, elf.build_id, tuple(elf.tables)
        self._sections = sorted(elf.sections)  # (addr, end, name)
        self._sec_starts = [s[0] for s in self._sections]
        self._loads = elf.loads  # (offset, vaddr, filesz, memsz)
        values, sizes, names = _merge(elf.parts, elf.strtab, path)
        self._values, self._sizes, self._names = values.tolist(), sizes.tolist(), names.tolist()
        ends = values + sizes
        self._ends, self._maxends = ends.tolist(), np.maximum.accumulate(ends).tolist()
        self._strtab = elf.strtab
        self._biases = {}

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"<ElfSymbols {self.path!r}: {len(self)} symbols from {', '.join(self.tables) or 'no table'}>"

    @classmethod
    def open(cls, path):
        """The (cached) symbols of `path`, with those of its /usr/lib/debug/.build-id file when installed.

        None when `path` is missing, unreadable, not a regular file or not
        ELF; a stripped file gives an object with no symbols (sections and
        segments still known). A damaged file raises SymbolFileError.
        """
        if not isinstance(path, str | bytes | os.PathLike):
            raise ArgumentTypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}")
        key = _stat_key(path)
        if key is None:
            return None
        with _cache_lock:
            found = _cache.get(key, _MISSING)
            if found is not _MISSING:
                _cache.move_to_end(key)
        if found is _MISSING:
            key, found = _parse_path(path)
            if key is None:
                return None
            if isinstance(found, _Elf):
                found = _with_debug_file(found, key)
                try:
                    found = cls(key[0], found)
                except SymbolFileError as e:
                    found = e
            with _cache_lock:  # None (not ELF) and errors too: asking again gives the same answer
                _cache[key] = found
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
        if isinstance(found, SymbolFileError):
            raise found
        return found

    def lookup(self, vaddr):
        """The innermost symbol with value <= vaddr < value + size (size-0 symbols never match), or None."""
        i = bisect.bisect_right(self._values, vaddr) - 1
        while i >= 0 and self._maxends[i] > vaddr:  # earlier symbols cannot reach vaddr once maxend <= vaddr
            if vaddr < self._ends[i]:
                start = self._names[i]
                raw = self._strtab[start:self._strtab.index(b"\0", start)].decode("utf-8", "backslashreplace")
                value = self._values[i]
                return SymbolHit(raw, vaddr - value, self.section_at(vaddr), value, self._sizes[i])
            i -= 1
        return None

    def section_at(self, vaddr):
        """The name of the allocated section holding vaddr (`.tbss` excluded: it takes no address space)."""
        i = bisect.bisect_right(self._sec_starts, vaddr) - 1
        return self._sections[i][2] if i >= 0 and vaddr < self._sections[i][1] else None

    def vaddr_of_offset(self, offset):
        """The virtual address the loader puts file byte `offset` at, or None when no PT_LOAD holds it."""
        for p_offset, p_vaddr, p_filesz, _ in self._loads:
            if p_offset <= offset < p_offset + p_filesz:
                return offset - p_offset + p_vaddr
        return None

    def lookup_file_offset(self, offset):
        """`lookup` for a file offset (address - mapping.start + mapping.offset)."""
        vaddr = self.vaddr_of_offset(offset)
        return None if vaddr is None else self.lookup(vaddr)

    def load_bias(self, mappings):
        """Runtime address minus file address, agreed on by the most (mapping, segment) pairs, or None.

        A mapping's page-aligned offset can fall in two segments' pages; the
        true bias is the one every mapping of the file supports. A mapping
        that starts on a segment's first page (as the loader maps it) counts
        twice, one that starts inside a segment (split by RELRO's mprotect) once.
        """
        mappings = tuple(mappings)
        if mappings in self._biases:
            return self._biases[mappings]
        votes = collections.Counter()
        for m in mappings:
            for p_offset, p_vaddr, p_filesz, _ in self._loads:
                if m.offset < p_offset + p_filesz and p_offset - m.offset < 0x10000:  # 64 KiB: largest page size
                    votes[m.start - (m.offset - p_offset + p_vaddr)] += 2 if m.offset <= p_offset else 1
        if len(self._biases) > 64:  # one entry per file mapping set in practice; bounded anyway
            self._biases.clear()
        bias = self._biases[mappings] = votes.most_common(1)[0][0] if votes else None
        return bias

    def in_image(self, vaddr):
        """Whether vaddr is inside some PT_LOAD's memory image (so also in .bss past the file's bytes)."""
        return any(v <= vaddr < v + memsz for _, v, _, memsz in self._loads)


class _Elf(NamedTuple):
    """What one file contributes before its symbols are merged and sorted."""

    bits: int
    sections: list
    loads: list
    parts: list  # (kept symbol records, base of their names in strtab)
    strtab: bytes
    tables: list
    build_id: str | None


_cache = collections.OrderedDict()
_cache_lock = threading.Lock()
_MISSING = object()
DEBUG_DIRS = ("/usr/lib/debug",)


def _stat_key(path):
    """The cache key of a regular file, or None. Only stat: a cache hit costs one system call, a FIFO is not opened."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    return (os.fsdecode(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) if stat.S_ISREG(st.st_mode) else None


def _parse_path(path):
    """(key of the file actually opened, _Elf | None (not ELF) | SymbolFileError), or (None, None)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, None
        key = (os.fsdecode(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            return key, _parse(_Reader(fd, st.st_size, key[0]))
        except SymbolFileError as e:
            return key, e
    except OSError:
        return None, None
    finally:
        os.close(fd)


def _with_debug_file(elf, key):
    """`elf` plus the symbols of the debug file gdb would use (by build id); a damaged or other one is ignored."""
    for root in DEBUG_DIRS if elf.build_id and len(elf.build_id) > 2 else ():
        path = os.path.join(root, ".build-id", elf.build_id[:2], elf.build_id[2:] + ".debug")
        found_key, extra = _parse_path(path)
        if isinstance(extra, _Elf) and extra.build_id == elf.build_id and found_key[1:3] != key[1:3]:
            base = len(elf.strtab)
            return elf._replace(parts=elf.parts + [(p, b + base) for p, b in extra.parts],
                                strtab=elf.strtab + extra.strtab,
                                tables=elf.tables + [f"debug {t}" for t in extra.tables])
    return elf


def _parse(r):
    if r.read(0, min(4, r.size), "ELF magic") != b"\x7fELF":
        return None
    ident = r.read(0, 16, "ELF identification")
    bits = {1: 32, 2: 64}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if bits is None or order is None:
        raise SymbolFileError(f"{r.path}: ELF class {ident[4]} / data encoding {ident[5]} is not one this reader knows")
    eh = r.table(16, 1, None, _EHDR[bits], order, "ELF header")[0]
    shoff, shnum, shstrndx, phnum = int(eh["shoff"]), int(eh["shnum"]), int(eh["shstrndx"]), int(eh["phnum"])
    sh = None
    if shoff:
        sh0 = r.table(shoff, 1, int(eh["shentsize"]), _SHDR[bits], order, "section header 0")[0]
        shnum = shnum or int(sh0["size"])
        shstrndx = int(sh0["link"]) if shstrndx == _XNUM else shstrndx
        phnum = int(sh0["info"]) if phnum == _XNUM else phnum
        sh = r.table(shoff, shnum, int(eh["shentsize"]), _SHDR[bits], order, "section headers") if shnum else None
    ph = r.table(int(eh["phoff"]), phnum, int(eh["phentsize"]), _PHDR[bits], order, "program headers")
    loads = [(int(p["offset"]), int(p["vaddr"]), int(p["filesz"]), int(p["memsz"]))
             for p in ph if p["type"] == _PT_LOAD]
    notes = [r.read(int(p["offset"]), int(p["filesz"]), "note segment")
             for p in ph if p["type"] == _PT_NOTE and p["filesz"] <= _MAX_NOTES]
    elf = _Elf(bits, [], loads, [], b"", [], _build_id(notes, order))
    if sh is None:
        return elf
    shstr = _section_bytes(r, sh, shstrndx, "section name table")
    for s in sh.tolist():
        name, kind, flags, addr, offset, size, link = s[:7]
        if flags & _SHF_ALLOC and size and not (flags & _SHF_TLS and kind == _SHT_NOBITS):
            elf.sections.append((addr, addr + size, _string(shstr, name, r.path, "section name")))
        if kind in (_SHT_SYMTAB, _SHT_DYNSYM):
            if not 0 < link < len(sh) or sh[link]["type"] != _SHT_STRTAB:
                raise SymbolFileError(f"{r.path}: symbol table's string table index {link} is not a string table")
            names = _section_bytes(r, sh, link, "symbol string table")
            if names and names[-1] != 0:
                raise SymbolFileError(f"{r.path}: symbol string table does not end with NUL")
            entsize = s[9] or np.dtype(_SYM[bits]).itemsize
            if size % entsize:
                raise SymbolFileError(f"{r.path}: symbol table size {size} is not a multiple of {entsize}")
            syms = r.table(offset, size // entsize, entsize, _SYM[bits], order, "symbol table")
            keep = _defined(syms)
            if (syms["name"][keep] >= len(names)).any():
                raise SymbolFileError(f"{r.path}: a symbol's name index is past its string table")
            elf.parts.append((syms[keep], len(elf.strtab)))
            elf = elf._replace(strtab=elf.strtab + names)
            elf.tables.append("symtab" if kind == _SHT_SYMTAB else "dynsym")
    return elf


def _build_id(notes, order):
    """NT_GNU_BUILD_ID as hex, from the PT_NOTE segments (4-byte aligned records), or None."""
    for data in notes:
        at = 0
        while at + 12 <= len(data):
            namesz, descsz, kind = struct.unpack_from(order + "III", data, at)
            desc_at = at + 12 + (namesz + 3) // 4 * 4
            if desc_at + descsz > len(data):
                break
            if kind == _NT_GNU_BUILD_ID and data[at + 12:at + 12 + namesz] == b"GNU\0" and descsz:
                return data[desc_at:desc_at + descsz].hex()
            at = desc_at + (descsz + 3) // 4 * 4
    return None


def _section_bytes(r, sh, index, what):
    if not 0 <= index < len(sh):
        raise SymbolFileError(f"{r.path}: {what} index {index} is not one of the {len(sh)} sections")
    s = sh[index]
    return b"" if s["type"] == _SHT_NOBITS else r.read(int(s["offset"]), int(s["size"]), what)


def _string(table, start, path, what):
    end = table.find(b"\0", start)
    if start >= len(table) or end < 0:
        raise SymbolFileError(f"{path}: {what} index {start} is past its string table ({len(table)} bytes)")
    return table[start:end].decode("utf-8", "backslashreplace")


def _defined(syms):
    kind, size, shndx = syms["info"] & 0xF, syms["size"], syms["shndx"]
    named = (syms["name"] != 0) & (shndx != 0) & ((shndx < _SHN_LORESERVE) | (shndx == _XNUM))
    return named & (size > 0) & (np.isin(kind, _KEPT_TYPES) | (kind == 0))


def _no_symbols():
    return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64)


def _merge(parts, strtab, path):
    """Both tables in one sorted array; per (value, size) one name, the most public-looking one.

    Aliases (`__libc_malloc`/`malloc`, `gsignal`/`raise`) are ranked by fewest
    leading underscores, then GLOBAL, WEAK, LOCAL. gdb has no stable rule here
    (its choice follows an unstable sort), so this picks for the reader.

    Sorting by size descending within a value makes the backward scan in
    `lookup` meet the innermost of nested symbols first.
    """
    if not parts:
        return _no_symbols()
    values = np.concatenate([p["value"].astype(np.uint64) for p, _ in parts])
    sizes = np.concatenate([p["size"].astype(np.uint64) for p, _ in parts])
    names = np.concatenate([p["name"].astype(np.int64) + base for p, base in parts])
    bind = np.concatenate([p["info"] >> 4 for p, _ in parts])
    text = np.frombuffer(strtab, np.uint8)
    first_us = text[names] == ord("_")
    second_us = first_us & (text[np.minimum(names + 1, len(text) - 1)] == ord("_"))
    rank = (first_us.astype(int) + second_us) * 4 + np.select([bind == 1, bind == 2], [0, 1], 2)
    ends = values + sizes
    if (ends < values).any():
        raise SymbolFileError(f"{path}: a symbol's value + size overflows the address space")
    order = np.lexsort((np.arange(len(values)), rank, ~sizes, values))
    values, sizes, names = values[order], sizes[order], names[order]
    first = np.ones(len(values), bool)
    first[1:] = (values[1:] != values[:-1]) | (sizes[1:] != sizes[:-1])
    return values[first], sizes[first], names[first]


def name_address(address, mappings, *, symbols=None):
    """gdb-style text for `address` in the file behind `mappings` (all of one file), or None.

    "SYM + 0x10 in section .data.rel.ro of libfoo.so" when a symbol covers the
    address, else "libfoo.so + 0xVADDR in section .text" (VADDR: the file's own
    address, as nm and readelf print). None when the file cannot be read, is
    damaged, or the address is outside its loaded image: the caller keeps its
    own wording then.
    """
    path = mappings[0].path if mappings else None
    if not path:
        return None
    try:
        elf = symbols if symbols is not None else ElfSymbols.open(path)
    except SymbolFileError:
        return None
    bias = None if elf is None else elf.load_bias(mappings)
    if bias is None or not elf.in_image(address - bias):
        return None
    vaddr, base = address - bias, os.path.basename(path)
    hit = elf.lookup(vaddr)
    name = elf.section_at(vaddr)
    section = f" in section {name}" if name else ""
    if hit is None:
        return f"{base} + {vaddr:#x}{section}"
    return f"{hit.name}{f' + {hit.offset:#x}' if hit.offset else ''}{section} of {base}"


# --------------------------------------------------------------------------- Rust symbol names

@functools.lru_cache(maxsize=4096)
def demangle(name):
    """A Rust symbol name (v0 `_R...` or legacy `_ZN...17h<hash>E`) for reading, without crate hashes.

    Anything else (C, C++, damaged Rust) comes back unchanged: a mangled name
    is still a correct name, a half-demangled one is not.
    """
    try:
        if name.startswith("_R"):
            return _demangle_v0(name[2:])
        if name.startswith("_ZN"):
            return _demangle_legacy(name[3:]) or name
    except (_Bad, RecursionError):  # RecursionError: nesting no compiler emits
        pass
    return name


class _Bad(Exception):
    """Not a name this demangler reads; the caller keeps the mangled one."""


_LENGTH = re.compile(r"[1-9][0-9]*")
_LEGACY_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ","}


def _demangle_legacy(s):
    parts, i = [], 0
    while i < len(s) and s[i] != "E":
        m = _LENGTH.match(s, i)
        if not m or m.end() + int(m.group()) > len(s):
            raise _Bad
        i = m.end() + int(m.group())
        parts.append(s[m.end():i])
    tail = s[i + 1:]
    if i >= len(s) or tail[:1] not in ("", ".") or not parts or not re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        return None  # not Rust: C++ names have no hash component
    return "::".join(_legacy_part(p) for p in parts[:-1]) + tail


def _legacy_part(p):
    if p.startswith("_$"):
        p = p[1:]

    def escape(m):
        code = m.group(1)
        if code in _LEGACY_ESCAPES:
            return _LEGACY_ESCAPES[code]
        if re.fullmatch(r"u[0-9a-f]{1,6}", code) and int(code[1:], 16) <= 0x10FFFF:
            return chr(int(code[1:], 16))
        raise _Bad

    return re.sub(r"\$([A-Za-z0-9]*)\$", escape, p).replace("..", "::")


_B62 = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")}
_BASIC = dict(a="i8", b="bool", c="char", d="f64", e="str", f="f32", h="u8", i="isize", j="usize", l="i32", m="u32",
              n="i128", o="u128", s="i16", t="u16", u="()", v="...", x="i64", y="u64", z="!", p="_")
_DECIMAL, _HEX = re.compile(r"0|[1-9][0-9]*"), re.compile(r"[0-9a-f]*_")
_MAX_STEPS = 20000  # backrefs can make output exponential in input; past this the name is kept mangled


def _demangle_v0(s):
    """Rust's v0 mangling (RFC 2603), printed as rustc-demangle's alternate form: no crate hashes."""
    if not s.isascii() or s[:1].isdigit():
        raise _Bad  # an encoding version we do not know
    s, dot, suffix = s.partition(".")
    p = _V0(s)
    out = p.path(True)
    if p.i < len(s):
        p.path(True)  # the instantiating crate, not printed
    if p.i != len(s):
        raise _Bad
    return out + dot + suffix


class _V0:
    def __init__(self, s):
        self.s, self.i, self.steps, self.bound = s, 0, 0, 0

    def next(self):
        if self.i >= len(self.s):
            raise _Bad
        self.i += 1
        return self.s[self.i - 1]

    def eat(self, c):
        if self.s.startswith(c, self.i):
            self.i += 1
            return True
        return False

    def b62(self):
        n = 0
        if self.eat("_"):
            return 0
        while (c := self.next()) != "_":
            if c not in _B62:
                raise _Bad
            n = n * 62 + _B62[c]
        return n + 1

    def opt(self, tag):
        return self.b62() + 1 if self.eat(tag) else 0

    def decimal(self):
        m = _DECIMAL.match(self.s, self.i)
        if not m:
            raise _Bad
        self.i = m.end()
        return int(m.group())

    def ident(self):
        dis, puny = self.opt("s"), self.eat("u")
        n = self.decimal()
        self.eat("_")
        name = self.s[self.i:self.i + n]
        if len(name) != n:
            raise _Bad
        self.i += n
        if puny:
            basic, _, ext = name.rpartition("_")
            try:
                name = (f"{basic}-{ext}" if basic else ext).encode().decode("punycode")
            except UnicodeError:
                raise _Bad from None
        return dis, name

    def back(self, parse):
        start = self.i - 1
        target = self.b62()
        self.steps += 1
        if target >= start or self.steps > _MAX_STEPS:
            raise _Bad
        saved, self.i = self.i, target
        try:
            return parse()
        finally:
            self.i = saved

    def list(self, parse):
        items = []
        while not self.eat("E"):
            items.append(parse())
        return items

    def path(self, value):
        c = self.next()
        if c == "C":
            return self.ident()[1]
        if c == "M":
            self.opt("s")
            self.path(False)
            return f"<{self.type()}>"
        if c == "X":
            self.opt("s")
            self.path(False)
            return f"<{self.type()} as {self.path(False)}>"
        if c == "Y":
            return f"<{self.type()} as {self.path(False)}>"
        if c == "N":
            ns, parent = self.next(), self.path(value)
            dis, name = self.ident()
            if ns.isupper():
                kind = {"C": "closure", "S": "shim"}.get(ns, ns)
                return f"{parent}::{{{kind}{':' + name if name else ''}#{dis}}}"
            if not ns.islower():
                raise _Bad
            return f"{parent}::{name}" if name else parent
        if c == "I":
            base = self.path(value)
            return f"{base}{'::' if value else ''}<{', '.join(self.list(self.generic))}>"
        if c == "B":
            return self.back(lambda: self.path(value))
        raise _Bad

    def generic(self):
        if self.eat("L"):
            return self.lifetime(self.b62())
        if self.eat("K"):
            return self.const()
        return self.type()

    def lifetime(self, index):
        if index == 0:
            return "'_"
        depth = self.bound - index
        if depth < 0:
            raise _Bad
        return f"'{chr(ord('a') + depth)}" if depth < 26 else f"'_{depth}"

    def binder(self):
        names = []
        for _ in range(self.opt("G")):
            self.bound += 1
            names.append(self.lifetime(1))
        return f"for<{', '.join(names)}> " if names else ""

    def type(self):
        c = self.next()
        if c in _BASIC:
            return _BASIC[c]
        if c in "RQ":
            lt = self.lifetime(self.b62()) + " " if self.eat("L") else ""
            lt = "" if lt == "'_ " else lt
            return f"&{lt}{'mut ' if c == 'Q' else ''}{self.type()}"
        if c in "PO":
            return f"*{'const' if c == 'P' else 'mut'} {self.type()}"
        if c == "A":
            return f"[{self.type()}; {self.const()}]"
        if c == "S":
            return f"[{self.type()}]"
        if c == "T":
            items = self.list(self.type)
            return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
        if c == "F":
            return self.scoped(self.fn_sig)
        if c == "D":
            text = self.scoped(self.dyn_bounds)
            lt = self.lifetime(self.b62()) if self.eat("L") else None
            return f"dyn {text}" + (f" + {lt}" if lt and lt != "'_" else "")
        if c == "B":
            return self.back(self.type)
        self.i -= 1
        return self.path(False)

    def scoped(self, parse):
        saved = self.bound
        try:
            return parse(self.binder())
        finally:
            self.bound = saved

    def fn_sig(self, binder):
        unsafe = "unsafe " if self.eat("U") else ""
        abi = ""
        if self.eat("K"):
            abi = "C" if self.eat("C") else self.abi()
            abi = f'extern "{abi}" '
        args = self.list(self.type)
        ret = self.type()
        return f"{binder}{unsafe}{abi}fn({', '.join(args)})" + ("" if ret == "()" else f" -> {ret}")

    def abi(self):
        n = self.decimal()
        self.eat("_")
        text = self.s[self.i:self.i + n]
        self.i += n
        if len(text) != n:
            raise _Bad
        return text.replace("_", "-")

    def dyn_bounds(self, binder):
        traits = []
        while not self.eat("E"):
            trait, assoc = self.path(False), []
            while self.eat("p"):
                name = self.ident()[1]
                assoc.append(f"{name} = {self.type()}")
            if assoc:
                trait = f"{trait[:-1]}, {', '.join(assoc)}>" if trait.endswith(">") else f"{trait}<{', '.join(assoc)}>"
            traits.append(trait)
        return binder + " + ".join(traits)

    def const(self):
        if self.eat("B"):
            return self.back(self.const)
        if self.eat("p"):
            return "_"
        tag = self.next()
        if tag not in "hmyotjaslxnibc":
            raise _Bad  # str, reference, array, tuple and struct constants: rare, kept mangled
        negative = tag in "aslxni" and self.eat("n")
        m = _HEX.match(self.s, self.i)
        if not m:
            raise _Bad
        self.i = m.end()
        value = int(m.group()[:-1] or "0", 16)
        if tag == "b":
            if value > 1:
                raise _Bad
            return "true" if value else "false"
        if tag == "c":
            if value > 0x10FFFF:
                raise _Bad
            return repr(chr(value))
        return str(-value if negative else value)
