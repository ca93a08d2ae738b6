"""ELF, declared once for every reader: a core file, the files behind a target's mappings, and the structures a
process holds in memory (program headers, dynamic section, auxiliary vector, the dynamic linker's list).

The layouts are numpy dtypes built for the class (32 or 64 bits) and byte
order read from the identification bytes, as pyelftools builds its structs;
each edge case (PN_XNUM, note padding) is handled here once. Only bytes
handed in are parsed, or read through a `FileReader`'s bounded `pread`.
"""

import os
from dataclasses import dataclass

import numpy as np

from ..errors import ElfFormatError

__all__ = ["FileReader", "ident", "header", "table", "program_headers", "section_headers", "symbols", "notes",
           "resolve_xnum", "dynamic_entries", "ProgramHeader", "program_header_list", "elf_header",
           "ELF_MAGIC", "XNUM", "PT_LOAD", "PT_DYNAMIC", "PT_INTERP", "PT_NOTE", "PT_PHDR", "PF_X", "PF_W", "PF_R",
           "SHT_SYMTAB", "SHT_STRTAB", "SHT_NOBITS", "SHT_DYNSYM", "SHF_ALLOC", "SHF_TLS", "SHN_LORESERVE",
           "NT_GNU_BUILD_ID", "AT_PHDR", "AT_PHENT", "AT_PHNUM", "AT_PAGESZ", "AT_BASE", "AT_ENTRY", "AT_EXECFN",
           "DT_NULL", "DT_DEBUG", "DYN", "R_DEBUG_MAP", "LINK_MAP", "MACHINE_NAMES", "ARCH_OF_MACHINE"]

ELF_MAGIC = b"\x7fELF"
XNUM = 0xFFFF  # e_phnum / e_shnum / e_shstrndx escape: the real value is in section header 0
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR = 1, 2, 3, 4, 6
PF_X, PF_W, PF_R = 1, 2, 4
SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS, SHT_DYNSYM = 2, 3, 8, 11
SHF_ALLOC, SHF_TLS = 0x2, 0x400
SHN_LORESERVE = 0xFF00
NT_GNU_BUILD_ID = 3
# Auxiliary vector entries (elf.h).
AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_ENTRY, AT_EXECFN = 3, 4, 5, 6, 7, 9, 31
DT_NULL, DT_DEBUG = 0, 21
# glibc's `struct r_debug` (link.h): r_version (int), then r_map at 8.
R_DEBUG_MAP = 8
# e_machine values (elf.h): their names, and the architectures a scan reads.
MACHINE_NAMES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
                 43: "SPARC V9", 50: "IA-64", 62: "x86-64", 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}
ARCH_OF_MACHINE = {62: "x86_64", 183: "aarch64"}

_EHDR = {64: [("ident", "V16"), ("type", "u2"), ("machine", "u2"), ("version", "u4"), ("entry", "u8"),
              ("phoff", "u8"), ("shoff", "u8"), ("flags", "u4"), ("ehsize", "u2"), ("phentsize", "u2"),
              ("phnum", "u2"), ("shentsize", "u2"), ("shnum", "u2"), ("shstrndx", "u2")]}
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
_NHDR = [("namesz", "u4"), ("descsz", "u4"), ("type", "u4")]
_KINDS = {"ELF header": _EHDR, "program headers": _PHDR, "section headers": _SHDR, "symbol table": _SYM}
# What a 64-bit little-endian process holds (cores and in-memory reads are those only).
DYN = np.dtype([("tag", "<i8"), ("val", "<u8")])  # Elf64_Dyn
LINK_MAP = np.dtype([("addr", "<u8"), ("name", "<u8"), ("ld", "<u8"), ("next", "<u8"), ("prev", "<u8")])


def dtype(kind, bits, order):
    """The numpy dtype of an ELF structure (`kind` as in _KINDS) for a class and byte order ("<" or ">")."""
    return np.dtype([(n, t if t.startswith("V") or t == "u1" else order + t) for n, t in _KINDS[kind][bits]])


def ident(data):
    """(bits, order) from the identification bytes: 32/64 and "<"/">", each None when not one ELF knows;
    None when `data` does not start with the ELF magic."""
    if len(data) < 6 or bytes(data[:4]) != ELF_MAGIC:
        return None
    return {1: 32, 2: 64}.get(data[4]), {1: "<", 2: ">"}.get(data[5])


def table(data, count, kind, bits, order):
    """`count` records of `kind` at the start of `data` (which must hold them all)."""
    dt = dtype(kind, bits, order)
    return np.frombuffer(data, dt, count) if count else np.zeros(0, dt)


def header(data, bits, order):
    """The ELF header record at the start of `data`."""
    return table(data, 1, "ELF header", bits, order)[0]


def resolve_xnum(eh, section0):
    """(phnum, shnum, shstrndx), with each PN_XNUM/0 escape replaced from section header 0 (`section0`, or None)."""
    phnum, shnum, shstrndx = int(eh["phnum"]), int(eh["shnum"]), int(eh["shstrndx"])
    if section0 is not None:
        shnum = shnum or int(section0["size"])
        shstrndx = int(section0["link"]) if shstrndx == XNUM else shstrndx
        phnum = int(section0["info"]) if phnum == XNUM else phnum
    return phnum, shnum, shstrndx


def program_headers(data, count, bits=64, order="<"):
    return table(data, count, "program headers", bits, order)


def section_headers(data, count, bits=64, order="<"):
    return table(data, count, "section headers", bits, order)


def symbols(data, count, bits=64, order="<"):
    return table(data, count, "symbol table", bits, order)


def notes(data, order="<", align=4):
    """(name without its NULs, type, desc) of each complete note in a note segment's bytes; a damaged tail
    ends the walk (names and descs are padded to `align`)."""
    data = memoryview(data)
    head = np.dtype([(n, order + t) for n, t in _NHDR])
    pos = 0
    while pos + head.itemsize <= len(data):
        namesz, descsz, kind = np.frombuffer(data, head, 1, pos)[0].tolist()
        desc = pos + 12 + -(-namesz // align) * align
        if desc + descsz > len(data):
            return
        yield bytes(data[pos + 12:pos + 12 + namesz]).rstrip(b"\0"), kind, data[desc:desc + descsz]
        pos = desc + -(-descsz // align) * align


def dynamic_entries(data):
    """(tag, value) pairs of a 64-bit little-endian dynamic section, up to DT_NULL."""
    entries = np.frombuffer(data[: len(data) // DYN.itemsize * DYN.itemsize], DYN)
    out = []
    for tag, value in entries.tolist():
        if tag == DT_NULL:
            break
        out.append((tag, value))
    return out


class FileReader:
    """Bounded positional reads of an open file that report a short file as damage (`error`, an
    ElfFormatError class), never as short bytes."""

    def __init__(self, fd, size, path, error=ElfFormatError):
        self.fd, self.size, self.path, self.error = fd, size, path, error

    def read(self, offset, size, what):
        if offset < 0 or size < 0 or offset + size > self.size:
            raise self.error(f"{self.path}: {what} at {offset:#x} ({size} bytes) is past the end of the "
                                 f"file ({self.size} bytes)", path=self.path, offset=offset, size=size)
        data = os.pread(self.fd, size, offset)
        if len(data) != size:
            raise self.error(f"{self.path}: {what} at {offset:#x}: file shrank while being read",
                                 path=self.path, offset=offset, size=size)
        return data

    def table(self, offset, count, entsize, kind, bits, order, what=None):
        """`count` records of `kind` at file `offset`, each `entsize` bytes (None: the declared size)."""
        dt = dtype(kind, bits, order)
        if not count:
            return np.zeros(0, dt)
        if entsize is not None and entsize != dt.itemsize:
            raise self.error(f"{self.path}: {what or kind} entries are {entsize} bytes, expected {dt.itemsize}",
                                 path=self.path)
        return np.frombuffer(self.read(offset, count * dt.itemsize, what or kind), dt)


# ----------------------------------------------------------------- in memory (64-bit little-endian)

@dataclass(frozen=True)
class ProgramHeader:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def perms(self):
        return "".join(c if self.flags & bit else "-" for c, bit in (("r", PF_R), ("w", PF_W), ("x", PF_X)))


def program_header_list(data, count):
    """The `count` Elf64_Phdr entries at the start of `data` (fewer if it is short), as ProgramHeader."""
    count = min(count, len(data) // dtype("program headers", 64, "<").itemsize)
    return [ProgramHeader(*(int(p[f]) for f in ("type", "flags", "offset", "vaddr", "filesz", "memsz", "align")))
            for p in program_headers(data, count)]


def elf_header(data):
    """(e_type, e_machine, e_entry, e_phoff, e_phentsize, e_phnum) of a 64-bit little-endian ELF header, or None."""
    if ident(data) != (64, "<") or len(data) < dtype("ELF header", 64, "<").itemsize:
        return None
    eh = header(data, 64, "<")
    return (int(eh["type"]), int(eh["machine"]), int(eh["entry"]), int(eh["phoff"]), int(eh["phentsize"]),
            int(eh["phnum"]))
