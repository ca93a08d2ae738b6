"""ELF as a 64-bit little-endian process holds it: the structures a scan reads (headers, segments, dynamic
section, auxiliary vector, the dynamic linker's list), declared once for the core reader and the loader map.

Only bytes handed in are parsed; nothing here reads a target or a file.
"""

import struct
from dataclasses import dataclass

__all__ = ["EHDR", "PHDR", "SHDR", "DYN", "ProgramHeader", "program_headers", "elf_header", "dynamic_entries",
           "ELF_MAGIC", "PT_LOAD", "PT_DYNAMIC", "PT_INTERP", "PT_NOTE", "PT_PHDR", "MACHINE_NAMES", "ARCH_OF_MACHINE", "PF_X", "PF_W", "PF_R",
           "AT_PHDR", "AT_PHENT", "AT_PHNUM", "AT_BASE", "AT_ENTRY", "AT_EXECFN", "DT_NULL", "DT_DEBUG",
           "R_DEBUG_MAP", "LINK_MAP"]

ELF_MAGIC = b"\x7fELF"
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, 64 bytes
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr, 56 bytes
SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr, 64 bytes
DYN = struct.Struct("<qQ")  # Elf64_Dyn: d_tag, d_val
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR = 1, 2, 3, 4, 6
# e_machine values (elf.h): their names, and the architectures a scan reads.
MACHINE_NAMES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
                 43: "SPARC V9", 50: "IA-64", 62: "x86-64", 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}
ARCH_OF_MACHINE = {62: "x86_64", 183: "aarch64"}
PF_X, PF_W, PF_R = 1, 2, 4
# Auxiliary vector entries (elf.h).
AT_PHDR, AT_PHENT, AT_PHNUM, AT_BASE, AT_ENTRY, AT_EXECFN = 3, 4, 5, 7, 9, 31
DT_NULL, DT_DEBUG = 0, 21
# glibc's `struct r_debug` (link.h): r_version (int), then r_map at 8.
R_DEBUG_MAP = 8
# `struct link_map`'s public head: l_addr, l_name, l_ld, l_next, l_prev.
LINK_MAP = struct.Struct("<QQQQQ")


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


def elf_header(data):
    """(e_type, e_machine, e_entry, e_phoff, e_phentsize, e_phnum) of a 64-bit little-endian ELF header, or None."""
    if len(data) < EHDR.size or data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return None
    (_, e_type, machine, _, entry, phoff, _, _, _, phentsize, phnum, _, _, _) = EHDR.unpack_from(data)
    return e_type, machine, entry, phoff, phentsize, phnum


def program_headers(data, count):
    """The `count` Elf64_Phdr entries at the start of `data` (fewer if it is short)."""
    count = min(count, len(data) // PHDR.size)
    out = []
    for i in range(count):
        p_type, flags, offset, vaddr, _, filesz, memsz, align = PHDR.unpack_from(data, i * PHDR.size)
        out.append(ProgramHeader(p_type, flags, offset, vaddr, filesz, memsz, align))
    return out


def dynamic_entries(data):
    """(tag, value) pairs of a dynamic section up to DT_NULL."""
    out = []
    for tag, value in DYN.iter_unpack(data[: len(data) // DYN.size * DYN.size]):
        if tag == DT_NULL:
            break
        out.append((tag, value))
    return out
