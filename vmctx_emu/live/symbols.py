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
import os
import stat
import threading
from typing import NamedTuple

import numpy as np

from ..checks import check_int
from ..errors import ArgumentTypeError, SymbolFileError
from . import elf
from .demangle import demangle
from .source import open_regular

__all__ = ["ElfSymbols", "SymbolHit", "address_parts", "parts_text", "name_address"]

_MAX_NOTES = 1 << 16  # a build-id note is ~36 bytes; larger note segments are skipped, not read
_KEPT_TYPES = (1, 2, 10)  # STT_OBJECT, STT_FUNC, STT_GNU_IFUNC; STT_NOTYPE only with a size
_CACHE_SIZE = 32
_MAX_SECTION_NAME = 256  # bytes kept of a section name (real ones are short; a hostile one may span the table)
# load_bias: the votes of at most this many mappings of the file and PT_LOAD segments (real files have
# a handful of each; a target mapping one library 3,000 times must not cost 3,000 x segments each time)
_BIAS_MAPPINGS, _BIAS_LOADS = 256, 64
_MAX_SYMBOL_TABLES = 8  # ELF allows one SHT_SYMTAB and one SHT_DYNSYM; each more costs a pass over numpy


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

    def __repr__(self):  # the symbol's address, size and the offset into it in hex
        return (f"SymbolHit(raw={self.raw!r}, offset={self.offset:#x}, section={self.section!r}, "
                f"value={self.value:#x}, size={self.size:#x})")


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
        self._image = _union((v, v + memsz) for _, v, _, memsz in elf.loads)  # for `in_image`, bisected
        self._image_starts = [start for start, _ in self._image]
        values, sizes, names = _merge(elf.parts, elf.strtab, path)
        self._values, self._sizes, self._names = values.tolist(), sizes.tolist(), names.tolist()
        self._ends = _max_levels(values + sizes)  # [ends, max of pairs, max of fours, ...] for `lookup`
        self._strtab = elf.strtab
        self._biases = {}
        self._last_bias = (None, None)  # (the mappings object last asked about, its bias): one file, one answer

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

    @staticmethod
    def forget():
        """Empty the cache of parsed files (each is parsed again on its next `open`)."""
        with _cache_lock:
            _cache.clear()

    def lookup(self, vaddr):
        """The innermost symbol with value <= vaddr < value + size (size-0 symbols never match), or None."""
        # Symbols are sorted by value, then size descending: the innermost symbol holding vaddr is
        # the last one starting at or before it whose end is past it. O(log n) however they nest.
        i = _last_above(self._ends, bisect.bisect_right(self._values, vaddr), vaddr)
        if i is None:
            return None
        start = self._names[i]
        raw = self._strtab[start:self._strtab.index(b"\0", start)].decode("utf-8", "backslashreplace")
        value = self._values[i]
        return SymbolHit(raw, vaddr - value, self.section_at(vaddr), value, self._sizes[i])

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
        last, bias = self._last_bias
        if mappings is last:  # a scan asks once per pointer with its image's one list (built once, never changed)
            return bias
        key = tuple(mappings)
        if key in self._biases:
            bias = self._biases[key]
        else:
            bias = self._biases[key] = self._vote(key)
        self._last_bias = (mappings, bias)
        return bias

    def _vote(self, mappings):
        votes = collections.Counter()
        for i, m in enumerate(mappings[:_BIAS_MAPPINGS]):
            _check_mapping(i, m)
            for p_offset, p_vaddr, p_filesz, _ in self._loads[:_BIAS_LOADS]:
                if m.offset < p_offset + p_filesz and p_offset - m.offset < 0x10000:  # 64 KiB: largest page size
                    votes[m.start - (m.offset - p_offset + p_vaddr)] += 2 if m.offset <= p_offset else 1
        if len(self._biases) > 64:  # one entry per file mapping set in practice; bounded anyway
            self._biases.clear()
        return votes.most_common(1)[0][0] if votes else None

    def in_image(self, vaddr):
        """Whether vaddr is inside some PT_LOAD's memory image (so also in .bss past the file's bytes)."""
        i = bisect.bisect_right(self._image_starts, vaddr) - 1
        return i >= 0 and vaddr < self._image[i][1]


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
        f = open_regular(path)
    except (OSError, ValueError):  # not there, not a regular file, or a NUL in the path
        return None, None
    with f:
        try:
            st = os.fstat(f.fileno())
            key = (os.fsdecode(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            try:
                return key, _parse(elf.FileReader(f.fileno(), st.st_size, key[0], SymbolFileError))
            except SymbolFileError as e:
                return key, e
        except OSError:
            return None, None


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
    if r.read(0, min(4, r.size), "ELF magic") != elf.ELF_MAGIC:
        return None
    ident = r.read(0, 16, "ELF identification")
    bits, order = elf.ident(ident)
    if bits is None or order is None:
        raise SymbolFileError(f"{r.path}: ELF class {ident[4]} / data encoding {ident[5]} is not one this reader knows")
    eh = r.table(0, 1, None, "ELF header", bits, order)[0]
    shoff = int(eh["shoff"])
    sh = section0 = None
    if shoff:
        section0 = r.table(shoff, 1, int(eh["shentsize"]), "section headers", bits, order, "section header 0")[0]
    phnum, shnum, shstrndx = elf.resolve_xnum(eh, section0)
    if shoff and shnum:
        sh = r.table(shoff, shnum, int(eh["shentsize"]), "section headers", bits, order)
    ph = r.table(int(eh["phoff"]), phnum, int(eh["phentsize"]), "program headers", bits, order)
    loads = [(int(p["offset"]), int(p["vaddr"]), int(p["filesz"]), int(p["memsz"]))
             for p in ph if p["type"] == elf.PT_LOAD]
    notes = [r.read(int(p["offset"]), int(p["filesz"]), "note segment")
             for p in ph if p["type"] == elf.PT_NOTE and p["filesz"] <= _MAX_NOTES]
    result = _Elf(bits, [], loads, [], b"", [], _build_id(notes, order))
    if sh is None:
        return result
    shstr = _section_bytes(r, sh, shstrndx, "section name table")
    strtabs = []
    names_at = {}  # string table section -> (its index in strtabs, its length): each is read once
    table_bytes = 0  # symbol and string table bytes read: no more than the file holds (tables never overlap)
    for s in sh.tolist():
        name, kind, flags, addr, offset, size, link = s[:7]
        if flags & elf.SHF_ALLOC and size and not (flags & elf.SHF_TLS and kind == elf.SHT_NOBITS):
            result.sections.append((addr, addr + size, _string(shstr, name, r.path, "section name")))
        if kind in (elf.SHT_SYMTAB, elf.SHT_DYNSYM):
            if len(result.tables) == _MAX_SYMBOL_TABLES:
                raise SymbolFileError(f"{r.path}: more than {_MAX_SYMBOL_TABLES} symbol tables (ELF allows one "
                                      f".symtab and one .dynsym)", path=r.path)
            if not 0 < link < len(sh) or sh[link]["type"] != elf.SHT_STRTAB:
                raise SymbolFileError(f"{r.path}: symbol table's string table index {link} is not a string table")
            entsize = s[9] or elf.dtype("symbol table", bits, order).itemsize
            if size % entsize:
                raise SymbolFileError(f"{r.path}: symbol table size {size} is not a multiple of {entsize}")
            table_bytes += size + (0 if link in names_at else int(sh[link]["size"]))
            if table_bytes > r.size:
                raise SymbolFileError(f"{r.path}: its symbol and string tables add up to more than the file's "
                                      f"{r.size} bytes (tables that overlap)", path=r.path, size=table_bytes)
            if link not in names_at:
                names = _section_bytes(r, sh, link, "symbol string table")
                if names and names[-1] != 0:
                    raise SymbolFileError(f"{r.path}: symbol string table does not end with NUL")
                names_at[link] = (len(strtabs), len(names))
                strtabs.append(names)
            syms = r.table(offset, size // entsize, entsize, "symbol table", bits, order)
            keep = _defined(syms)
            index, length = names_at[link]
            if (syms["name"][keep] >= length).any():
                raise SymbolFileError(f"{r.path}: a symbol's name index is past its string table")
            result.parts.append((syms[keep], index))
            result.tables.append("symtab" if kind == elf.SHT_SYMTAB else "dynsym")
    bases = np.cumsum([0] + [len(t) for t in strtabs]).tolist()  # joined once: never a copy per table
    return result._replace(parts=[(p, bases[i]) for p, i in result.parts], strtab=b"".join(strtabs))


def _build_id(notes, order):
    """NT_GNU_BUILD_ID as hex, from the PT_NOTE segments (4-byte aligned records), or None."""
    for data in notes:
        for name, kind, desc in elf.notes(data, order):
            if kind == elf.NT_GNU_BUILD_ID and name == b"GNU" and len(desc):
                return bytes(desc).hex()
    return None


def _section_bytes(r, sh, index, what):
    if not 0 <= index < len(sh):
        raise SymbolFileError(f"{r.path}: {what} index {index} is not one of the {len(sh)} sections")
    s = sh[index]
    return b"" if s["type"] == elf.SHT_NOBITS else r.read(int(s["offset"]), int(s["size"]), what)


def _string(table, start, path, what):
    """The NUL-terminated string at `start`, its first _MAX_SECTION_NAME bytes: thousands of sections naming
    one long run of bytes must not cost thousands of copies of it."""
    end = table.find(b"\0", start)
    if start >= len(table) or end < 0:
        raise SymbolFileError(f"{path}: {what} index {start} is past its string table ({len(table)} bytes)")
    return table[start:min(end, start + _MAX_SECTION_NAME)].decode("utf-8", "backslashreplace")


def _max_levels(ends):
    """[ends, the max of each aligned pair, of each aligned four, ...] as lists, for `_last_above`."""
    levels = [ends]
    while len(levels[-1]) > 1:
        level = levels[-1]
        if len(level) % 2:
            level = np.append(level, np.uint64(0))
        levels.append(np.maximum(level[0::2], level[1::2]))
    return [level.tolist() for level in levels]


def _last_above(levels, stop, x):
    """The largest i < stop with levels[0][i] > x, or None, in O(log n) steps over the max levels."""
    j = stop  # candidates are [0, j)
    while j > 0:
        k = min((j & -j).bit_length() - 1, len(levels) - 1)  # the largest aligned block [j - 2**k, j)
        if levels[k][(j >> k) - 1] > x:
            while k:  # descend: prefer the right half, which holds the larger indices
                k -= 1
                if levels[k][(j >> k) - 1] <= x:
                    j -= 1 << k
            return j - 1
        j -= 1 << k
    return None


def _defined(syms):
    kind, size, shndx = syms["info"] & 0xF, syms["size"], syms["shndx"]
    named = (syms["name"] != 0) & (shndx != 0) & ((shndx < elf.SHN_LORESERVE) | (shndx == elf.XNUM))
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


def address_parts(address, mappings, *, symbols=None):
    """Where `address` lands in the file behind `mappings` (all of one file), as fields, or None.

    {"file": basename, "vaddr": the file's own address (as nm and readelf print), "section": its
    section or None, "symbol": the covering symbol or None, "offset": into that symbol}. None when
    the file cannot be read, is damaged, or the address is outside its loaded image.
    """
    _check_arguments(address, mappings, symbols)
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
    vaddr = address - bias
    hit = elf.lookup(vaddr)
    return {"file": os.path.basename(path), "vaddr": vaddr, "section": elf.section_at(vaddr),
            "symbol": None if hit is None else hit.name, "offset": None if hit is None else hit.offset}


def _check_arguments(address, mappings, symbols):
    """ArgumentTypeError / ArgumentValueError for what `address_parts` cannot use, naming the argument."""
    check_int("address", address, 0, 1 << 64, bound="in [0, 2**64)", hex_value=True)
    if not isinstance(mappings, list | tuple):
        raise ArgumentTypeError(f"mappings must be a list or tuple of Mapping, got {type(mappings).__name__} "
                                f"{mappings!r:.80}", argument="mappings", value=mappings)
    if mappings:  # the others when the bias is worked out: checking all per pointer costs what caching saves
        _check_mapping(0, mappings[0])
    if symbols is not None and not isinstance(symbols, ElfSymbols):
        raise ArgumentTypeError(f"symbols must be an ElfSymbols or None, got {type(symbols).__name__} "
                                f"{symbols!r:.80}", argument="symbols", value=symbols)


def _check_mapping(i, m):
    if not all(isinstance(getattr(m, a, None), int) for a in ("start", "end", "offset")) \
            or not isinstance(getattr(m, "path", None), str | None):
        raise ArgumentTypeError(f"mappings[{i}] must be a Mapping (int start, end and offset, str or None "
                                f"path), got {type(m).__name__} {m!r:.80}", argument=f"mappings[{i}]", value=m)


def _union(ranges):
    """Sorted, merged [start, end) ranges."""
    merged = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def parts_text(parts):
    """`address_parts` as gdb's `info symbol` says it: "SYM + 0x10 in section .data.rel.ro of libfoo.so",
    or "libfoo.so + 0xVADDR in section .text" without a symbol."""
    section = f" in section {parts['section']}" if parts["section"] else ""
    if parts["symbol"] is None:
        return f"{parts['file']} + {parts['vaddr']:#x}{section}"
    offset = f" + {parts['offset']:#x}" if parts["offset"] else ""
    return f"{parts['symbol']}{offset}{section} of {parts['file']}"


def name_address(address, mappings, *, symbols=None):
    """gdb-style text for `address` in the file behind `mappings` (`parts_text` of `address_parts`), or None:
    the caller keeps its own wording then."""
    parts = address_parts(address, mappings, symbols=symbols)
    return None if parts is None else parts_text(parts)
