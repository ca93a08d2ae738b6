"""`vmctx_emu.live.symbols`: gdb-style names for addresses in mapped ELF files.

Checked against: synthetic ELF files of both classes and byte orders (layout
known exactly, then damaged field by field), shared objects gcc builds here
(loaded into this process, so real mappings and real addresses), the wasmtime
library and system binaries (differentially against gdb, readelf and
c++filt when installed), and a real component context's builtins pointer.
"""

import collections
import ctypes
import importlib.util
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from importlib.metadata import version

import pytest

NO_SUCH_PID = 2**22 + 12345  # above the default pid_max: no process has it
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_hostile_symbols import b62
from vmctx_emu.describe import context_doc
from vmctx_emu.errors import ArgumentTypeError, LiveError, SymbolFileError
from vmctx_emu.live import symbols
from vmctx_emu.errors import UnreadableMemoryError
from vmctx_emu.live.process import parse_maps
from vmctx_emu.live.source import Mapping, MemorySource
from vmctx_emu.live.demangle import demangle
from vmctx_emu.live.symbols import ElfSymbols, SymbolHit, name_address

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files and /proc/self/maps")

_WASMTIME = importlib.util.find_spec("wasmtime")
WASMTIME_LIB = os.path.join(_WASMTIME.submodule_search_locations[0] if _WASMTIME else "", "linux-x86_64",
                            "_libwasmtime.so")
BUILTINS = "<wasmtime::runtime::vm::component::ComponentInstance>::initialize_vmctx::BUILTINS"
GDB, READELF, GCC, CXXFILT = (shutil.which(t) for t in ("gdb", "readelf", "gcc", "c++filt"))
needs_wasmtime = pytest.mark.skipif(not os.path.exists(WASMTIME_LIB), reason="wasmtime's linux-x86_64 library")


def run(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw).stdout


def maps_of(path):
    """This process's mappings of `path`."""
    with open("/proc/self/maps") as f:
        return [m for m in parse_maps(f.read()) if m.path and os.path.realpath(m.path) == os.path.realpath(path)]


# --------------------------------------------------------------------------- synthetic ELF files

BASE = 0x10000
TEXT, DATA, BSS = 0x100, 0x140, 0x160  # file offsets (= vaddr - BASE) of .text (64 B), .data (32 B), .bss (16 B)
BUILD_ID = bytes(range(1, 21))
# name, type, bind, section, value (relative to the section), size; locals first as ELF wants
SYMS = [("func_b", 2, 0, ".text", 16, 32), ("inner", 1, 0, ".data", 8, 8), ("", 3, 0, ".text", 0, 0),
        ("func_a", 2, 1, ".text", 0, 16), ("alias_a", 2, 2, ".text", 0, 16), ("__func_a", 2, 1, ".text", 0, 16),
        ("outer", 1, 1, ".data", 0, 32), ("zero", 2, 1, ".text", 48, 0), ("undef", 2, 1, None, 0, 8),
        ("tls", 6, 1, ".tbss", 0, 4), ("abs", 1, 1, "ABS", 0x500, 4), ("in_bss", 1, 1, ".bss", 0, 16),
        ("notype_sized", 0, 1, ".text", 56, 4), ("ifunc", 10, 1, ".text", 60, 4)]
SECTIONS = ["", ".note.gnu.build-id", ".text", ".data", ".bss", ".tbss", ".symtab", ".strtab", ".shstrtab"]


def build_elf(bits=64, order="<", **tweak):
    """A small ET_DYN file; `tweak` damages one named field (see MALFORMED)."""
    w = 8 if bits == 64 else 4
    q = "Q" if bits == 64 else "I"
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n, *_ in SYMS if n)
    shstr = b"\0" + b"".join(n.encode() + b"\0" for n in SECTIONS[1:])
    if tweak.get("strtab_unterminated"):
        strtab += b"x"
    note = struct.pack(order + "III", 4, len(BUILD_ID), 3) + b"GNU\0" + BUILD_ID
    sym_fmt = order + ("IBBHQQ" if bits == 64 else "IIIBBH")
    ndx = {n: i for i, n in enumerate(SECTIONS)} | {None: 0, "ABS": 0xFFF1}
    addr = {".text": TEXT, ".data": DATA, ".bss": BSS, ".tbss": 0, "ABS": 0, None: 0}
    entries, name_at = [bytes(struct.calcsize(sym_fmt))], 1
    for name, kind, bind, sec, value, size in SYMS:
        at = name_at if name else 0
        name_at += len(name) + 1 if name else 0
        if name == "func_a" and "sym_name" in tweak:
            at = tweak["sym_name"]
        if name == "outer" and tweak.get("sym_overflow"):
            value, size = 2**64 - BASE - DATA - 8, 64
        v = value + (BASE + addr[sec] if sec not in (None, ".tbss", "ABS") else 0)
        info = bind << 4 | kind
        fields = (at, info, 0, ndx[sec], v, size) if bits == 64 else (at, v, size, info, 0, ndx[sec])
        entries.append(struct.pack(sym_fmt, *fields))
    symtab = b"".join(entries)
    blob = bytearray(0x178)
    blob[0xC0:0xC0 + len(note)] = note
    blob[TEXT:TEXT + 64] = bytes(range(64))
    blob[DATA:DATA + 32] = b"\xaa" * 32
    sym_off = len(blob)
    blob += symtab
    str_off = len(blob)
    blob += strtab
    shstr_off = len(blob)
    blob += shstr
    blob += bytes(-len(blob) % 8)
    shoff = len(blob)
    load_end = DATA + 32
    sh = [  # name, type, flags, addr, offset, size, link, info, align, entsize
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, 7, 2, BASE + 0xC0, 0xC0, len(note), 0, 0, 4, 0),
        (shstr.index(b".text"), 1, 6, BASE + TEXT, TEXT, 64, 0, 0, 16, 0),
        (shstr.index(b".data"), 1, 3, BASE + DATA, DATA, 32, 0, 0, 8, 0),
        (shstr.index(b".bss"), 8, 3, BASE + BSS, BSS, 16, 0, 0, 8, 0),
        (shstr.index(b".tbss"), 8, 0x403, BASE + BSS, BSS, 16, 0, 0, 8, 0),  # overlaps .bss, as in real files
        (shstr.index(b".symtab"), 2, 0, 0, sym_off, len(symtab), 7, 4, w, struct.calcsize(sym_fmt)),
        (shstr.index(b".strtab"), 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0),
        (shstr.index(b".shstrtab"), 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0),
    ]
    symtab_hdr = list(sh[6])
    for key, i in (("symtab_offset", 4), ("symtab_size", 5), ("symtab_link", 6), ("symtab_entsize", 9)):
        if key in tweak:
            symtab_hdr[i] = tweak[key]
    sh[6] = tuple(symtab_hdr)
    if "section_name" in tweak:
        sh[2] = (tweak["section_name"],) + sh[2][1:]
    sh_fmt = order + ("IIQQQQIIQQ" if bits == 64 else "IIIIIIIIII")
    for h in sh:
        blob += struct.pack(sh_fmt, *h)
    ph_fmt = order + ("IIQQQQQQ" if bits == 64 else "IIIIIIII")
    note_off = tweak.get("note_offset", 0xC0)
    phs = [(1, 5, 0, BASE, BASE, load_end, BSS + 16 - 0, 0x1000), (4, 4, note_off, BASE + 0xC0, BASE + 0xC0,
                                                                      len(note), len(note), 4)]
    eh_size, ph_size = (64, 56) if bits == 64 else (52, 32)
    phoff = eh_size
    for i, (t, flags, off, va, pa, fs, ms, al) in enumerate(phs):
        p = (t, flags, off, va, pa, fs, ms, al) if bits == 64 else (t, off, va, pa, fs, ms, flags, al)
        blob[phoff + i * ph_size:phoff + (i + 1) * ph_size] = struct.pack(ph_fmt, *p)
    ident = bytearray(b"\x7fELF" + bytes([2 if bits == 64 else 1, 1 if order == "<" else 2, 1]) + bytes(9))
    if "magic" in tweak:
        ident[:4] = tweak["magic"]
    if "ident_class" in tweak:
        ident[4] = tweak["ident_class"]
    if "ident_data" in tweak:
        ident[5] = tweak["ident_data"]
    eh = dict(type=3, machine=62, version=1, entry=0, phoff=phoff, shoff=shoff, flags=0, ehsize=eh_size,
              phentsize=ph_size, phnum=len(phs), shentsize=struct.calcsize(sh_fmt), shnum=len(sh),
              shstrndx=len(sh) - 1)
    eh.update({k[2:]: v for k, v in tweak.items() if k.startswith("e_")})
    blob[:eh_size] = struct.pack(order + f"16sHHI{q}{q}{q}IHHHHHH", bytes(ident), *eh.values())
    return bytes(blob)


LAYOUTS = [(64, "<"), (64, ">"), (32, "<"), (32, ">")]


def write(tmp_path, data, name="x.so"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(params=LAYOUTS, ids=lambda p: f"elf{p[0]}{'le' if p[1] == '<' else 'be'}")
def synthetic(request, tmp_path):
    return ElfSymbols.open(write(tmp_path, build_elf(*request.param)))


@pytest.mark.skipif(not READELF, reason="readelf")
@pytest.mark.parametrize("bits,order", LAYOUTS)
def test_readelf_reads_the_synthetic_files_as_intended(tmp_path, bits, order):
    """The fixture is real ELF, not just something this reader agrees with itself about."""
    path = write(tmp_path, build_elf(bits, order))
    out = run(READELF, "-Wsn", path)
    rows = {p[7]: (int(p[1], 16), int(p[2]), p[3], p[6]) for p in map(str.split, out.splitlines())
            if len(p) == 8 and p[0].endswith(":") and p[0][:-1].isdigit()}
    assert rows["func_a"] == (BASE + TEXT, 16, "FUNC", "2")
    assert rows["inner"] == (BASE + DATA + 8, 8, "OBJECT", "3")
    assert rows["tls"][2:] == ("TLS", "5") and rows["undef"][3] == "UND" and rows["abs"][3] == "ABS"
    assert BUILD_ID.hex() in out


def test_synthetic_lookups(synthetic):
    s = synthetic
    assert s.tables == ("symtab",) and s.build_id == BUILD_ID.hex() and s.bits in (32, 64)
    # func_a/alias_a/__func_a share one (value, size): one entry; outer, inner, in_bss, notype_sized, ifunc, func_b
    assert len(s) == 7
    expect = {
        TEXT: ("func_a", 0, ".text"), TEXT + 15: ("func_a", 15, ".text"), TEXT + 16: ("func_b", 0, ".text"),
        TEXT + 47: ("func_b", 31, ".text"), TEXT + 48: None, TEXT + 55: None,  # "zero" has no size
        TEXT + 56: ("notype_sized", 0, ".text"), TEXT + 61: ("ifunc", 1, ".text"),
        DATA: ("outer", 0, ".data"), DATA + 8: ("inner", 0, ".data"), DATA + 15: ("inner", 7, ".data"),
        DATA + 16: ("outer", 16, ".data"), DATA + 31: ("outer", 31, ".data"),
        BSS: ("in_bss", 0, ".bss"), BSS + 16: None, 0x500: None, 0: None, -BASE: None,
    }
    for at, want in expect.items():
        hit = s.lookup(BASE + at)
        assert (hit and (hit.name, hit.offset, hit.section)) == want, hex(at)
    hit = s.lookup(BASE + DATA + 9)
    assert hit == SymbolHit("inner", 1, ".data", BASE + DATA + 8, 8) and hit.name == "inner"
    assert s.section_at(BASE + TEXT + 48) == ".text" and s.section_at(BASE + BSS) == ".bss"  # not .tbss
    assert s.section_at(BASE) is None and s.section_at(BASE + 0xC0) == ".note.gnu.build-id"


def test_file_offsets_and_load_bias(synthetic):
    s = synthetic
    assert s.vaddr_of_offset(TEXT + 3) == BASE + TEXT + 3 and s.vaddr_of_offset(BSS) is None  # .bss: no file bytes
    assert s.lookup_file_offset(DATA + 8).name == "inner" and s.lookup_file_offset(10**9) is None
    load = 0x7F0000000000
    maps = [Mapping(load, load + 0x1000, "r-xp", 0, s.path)]
    assert s.load_bias(maps) == load - BASE and s.load_bias([]) is None
    assert name_address(load + TEXT + 20, maps) == "func_b + 0x4 in section .text of x.so"
    assert name_address(load + TEXT, maps) == "func_a in section .text of x.so"
    assert name_address(load + BSS + 3, maps) == "in_bss + 0x3 in section .bss of x.so"  # past the file's bytes
    assert name_address(load + TEXT + 50, maps) == f"x.so + {BASE + TEXT + 50:#x} in section .text"
    assert name_address(load + 0x10, maps) == f"x.so + {BASE + 0x10:#x}"  # in the image, in no section
    assert name_address(load + BSS + 16, maps) is None and name_address(load - 1, maps) is None  # not in the image


def test_name_address_without_a_usable_file(tmp_path):
    maps = [Mapping(0x1000, 0x2000, "r--p", 0, str(tmp_path / "gone.so"))]
    assert name_address(0x1000, maps) is None
    assert name_address(0x1000, []) is None
    assert name_address(0x1000, [Mapping(0x1000, 0x2000, "rw-p")]) is None  # anonymous
    assert name_address(0x1000, [Mapping(0x1000, 0x2000, "rw-p", 0, "[heap]")]) is None
    damaged = write(tmp_path, build_elf(symtab_offset=0xFFFFFF00))
    assert name_address(0x1000, [Mapping(0x1000, 0x2000, "r--p", 0, damaged)]) is None


def test_open_quietly_gives_none(tmp_path):
    assert ElfSymbols.open(tmp_path / "missing") is None
    assert ElfSymbols.open(str(tmp_path)) is None  # a directory
    assert ElfSymbols.open(write(tmp_path, b"")) is None
    assert ElfSymbols.open(write(tmp_path, b"#!/bin/sh\necho not elf\n", "script")) is None
    assert ElfSymbols.open("/dev/null") is None
    assert ElfSymbols.open("bad\0path") is None
    unreadable = write(tmp_path, build_elf(), "unreadable.so")
    os.chmod(unreadable, 0)
    if os.geteuid() != 0:  # root reads anything
        assert ElfSymbols.open(unreadable) is None
    with pytest.raises(ArgumentTypeError, match="path must be"):
        ElfSymbols.open(42)


def test_no_section_headers_means_no_symbols_but_segments(tmp_path):
    """As after `sstrip`: nothing to name with, the image is still known."""
    s = ElfSymbols.open(write(tmp_path, build_elf(e_shoff=0, e_shnum=0)))
    assert len(s) == 0 and s.tables == () and s.lookup(BASE + TEXT) is None and s.section_at(BASE + TEXT) is None
    assert s.build_id == BUILD_ID.hex() and s.vaddr_of_offset(TEXT) == BASE + TEXT
    assert name_address(0x7000 + TEXT, [Mapping(0x7000, 0x8000, "r-xp", 0, s.path)]) == f"x.so + {BASE + TEXT:#x}"


FAR = 0xFFFFFF00  # an offset far past the end that still fits 32-bit fields
# Each row damages one thing; None means "not ELF" (quiet), an error names what is wrong.
MALFORMED = [
    ("bad magic", {"magic": b"\x7fELG"}, None),
    ("ELF class 3", {"ident_class": 3}, "ELF class 3"),
    ("byte order 0", {"ident_data": 0}, "data encoding 0"),
    ("section headers past EOF", {"e_shoff": FAR}, "section header 0 .* past the end"),
    ("section header size", {"e_shentsize": 10}, "section header 0 entries are 10 bytes"),
    ("program header size", {"e_phentsize": 10}, "program headers entries are 10 bytes"),
    ("program headers past EOF", {"e_phoff": FAR}, "program headers .* past the end"),
    ("too many sections", {"e_shnum": 5000}, "section headers .* past the end"),
    ("section name table index", {"e_shstrndx": 99}, "section name table index 99"),
    ("section name past its table", {"section_name": 10**6}, "section name index 1000000"),
    ("symbol table past EOF", {"symtab_offset": FAR}, "symbol table .* past the end"),
    ("symbol table size", {"symtab_size": 100}, "not a multiple"),
    ("symbol entry size", {"symtab_entsize": 8}, "entries are 8 bytes"),
    ("symbol strings link 0", {"symtab_link": 0}, "string table index 0"),
    ("symbol strings link out of range", {"symtab_link": 99}, "string table index 99"),
    ("symbol strings link to .text", {"symtab_link": 2}, "string table index 2"),
    ("unterminated strings", {"strtab_unterminated": True}, "does not end with NUL"),
    ("symbol name past strings", {"sym_name": 10**6}, "name index is past"),
    ("note segment past EOF", {"note_offset": FAR}, "note segment .* past the end"),
]


@pytest.mark.parametrize("bits,order", LAYOUTS)
@pytest.mark.parametrize("what,tweak,error", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(tmp_path, bits, order, what, tweak, error):
    path = write(tmp_path, build_elf(bits, order, **tweak))
    if error is None:
        assert ElfSymbols.open(path) is None
        return
    with pytest.raises(SymbolFileError, match=error) as raised:
        ElfSymbols.open(path)
    assert isinstance(raised.value, LiveError) and isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(path) and "\n" not in str(raised.value)
    with pytest.raises(SymbolFileError):  # cached, still raised
        ElfSymbols.open(path)


def test_value_plus_size_overflow(tmp_path):
    with pytest.raises(SymbolFileError, match="overflows"):
        ElfSymbols.open(write(tmp_path, build_elf(sym_overflow=True)))


@pytest.mark.parametrize("bits,order", LAYOUTS)
def test_every_truncation(tmp_path, bits, order):
    """Section headers come last, so every cut past the magic loses something: always an error, never IndexError."""
    data = build_elf(bits, order)
    for n in range(len(data)):
        path = write(tmp_path, data[:n], f"cut{n}")
        if n < 4:
            assert ElfSymbols.open(path) is None
        else:
            with pytest.raises(SymbolFileError):
                ElfSymbols.open(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.sampled_from(LAYOUTS), edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                                        min_size=1, max_size=8), cut=st.integers(0, 3000))
def test_random_damage_is_none_or_package_error(tmp_path_factory, layout, edits, cut):
    data = bytearray(build_elf(*layout))
    for at, byte in edits:
        data[at % len(data)] = byte
    path = write(tmp_path_factory.mktemp("fuzz"), bytes(data[:cut]))
    try:
        s = ElfSymbols.open(path)
    except SymbolFileError:
        return
    if s is None:
        return
    maps = [Mapping(0x7000000, 0x7001000, "r-xp", 0, path)]
    for at in (0, BASE, BASE + TEXT + 5, BASE + DATA + 9, 2**64 - 1):
        s.lookup(at), s.section_at(at), s.lookup_file_offset(at), name_address(0x7000000 + at % 4096, maps)


# --------------------------------------------------------------------------- caching and reading

def test_cache_per_file_version(tmp_path):
    path = write(tmp_path, build_elf())
    first = ElfSymbols.open(path)
    assert ElfSymbols.open(path) is first
    os.utime(path, ns=(10**18, 10**18))
    second = ElfSymbols.open(path)
    assert second is not first and second.lookup(BASE + TEXT).name == "func_a"
    os.replace(write(tmp_path, build_elf(32), "new.so"), path)  # same path, new inode
    assert ElfSymbols.open(path).bits == 32


@needs_wasmtime
def test_reads_tables_not_the_whole_file(monkeypatch):
    reads = []
    real = os.pread

    def counting(fd, n, offset):
        reads.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(symbols, "_cache", collections.OrderedDict())
    monkeypatch.setattr(os, "pread", counting)
    s = ElfSymbols.open(WASMTIME_LIB)
    size = os.path.getsize(WASMTIME_LIB)
    assert len(s) > 20000 and reads and max(reads) < size / 4 and sum(reads) < size / 3, (sum(reads), size)
    reads.clear()
    assert ElfSymbols.open(WASMTIME_LIB) is s and reads == []  # cached: not even the headers again


# --------------------------------------------------------------------------- demangling

V0 = {  # each checked with GNU c++filt 2.40 (which also prints crate hashes and const types)
    "_RNvCs1234_7mycrate3foo": "mycrate::foo",
    "_RNCNvCs1234_7mycrate3foo0": "mycrate::foo::{closure#0}",
    "_RNCNvCs1234_7mycrate3foos_0": "mycrate::foo::{closure#1}",
    "_RNSNvCs1234_7mycrate3foo6vtable": "mycrate::foo::{shim:vtable#0}",
    "_RNvMCs1234_7mycrateNtB2_3Foo3new": "<mycrate::Foo>::new",
    "_RNvXCs1234_7mycrateNtB2_3FooNtNtCs5678_4core3fmt7Display3fmt": "<mycrate::Foo as core::fmt::Display>::fmt",
    "_RNvYNtCs1234_7mycrate3FooNtB4_5Trait3bar": "<mycrate::Foo as mycrate::Trait>::bar",
    "_RINvCs1234_7mycrate4swapRShQlEB2_": "mycrate::swap::<&[u8], &mut i32>",
    "_RINvCs1234_7mycrate1fAhj10_PuOuTlEE": "mycrate::f::<[u8; 16], *const (), *mut (), (i32,)>",
    "_RINvCs1234_7mycrate1fTFG_RL0_hEuEKj2a_Kb1_Kane_EB2_": "mycrate::f::<(for<'a> fn(&'a u8),), 42, true, -14>",
    "_RINvCs1234_7mycrate1fDNtCs5678_4core3AnyEL_E": "mycrate::f::<dyn core::Any>",
    "_RINvCs1234_7mycrate1fDG_INtNtCs5678_4core3ops2FnTRL0_hEEp6OutputuEL_E":
        "mycrate::f::<dyn for<'a> core::ops::Fn<(&'a u8,), Output = ()>>",
    "_RINvCs1234_7mycrate1fFKCEuFUK6systemEuE": 'mycrate::f::<extern "C" fn(), unsafe extern "system" fn()>',
    "_RINvCs1234_7mycrate1fKc61_KpE": "mycrate::f::<'a', _>",
    "_RNvCs1234_7mycrateu8gdel_5qa": "mycrate::gödel",
    "_RNvCs1234_7mycrate3foo.llvm.12345": "mycrate::foo.llvm.12345",
    "_RNvNvMs0_NtNtNtCsj7FSLG1y9E8_8wasmtime7runtime2vm9componentNtB7_17ComponentInstance16initialize_vmctx"
    "8BUILTINS": BUILTINS,
}
LEGACY = {
    "_ZN4core3ptr13drop_in_place17h0123456789abcdefE": "core::ptr::drop_in_place",
    "_ZN66_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE":
        "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop",
    "_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17h1a2b3c4d5e6f7a8bE": "std::rt::lang_start::{{closure}}",
    "_ZN3foo3bar17h0123456789abcdefE.llvm.42": "foo::bar.llvm.42",
}
UNCHANGED = [
    "main", "_ZNSt6vectorIiSaIiEE9push_backERKi", "_ZN3foo3barE", "_ZN3foo17h0123E", "_ZN3fooE", "_ZN9tooshort",
    "_ZN3foo3$XX$17h0123456789abcdefE", "_R", "_RNv", "_RNvCs1234_7mycrate", "_RB0_", "_RB_", "_RNvC3foo9toolong",
    "_RINvCs1234_7mycrate1fKaneEB2_", "_RINvCs1234_7mycrate1fDNtCs5678_4core3AnypE", "_R0NvC3foo3bar",
    "_RNvC3foo3bé", "_RNvCs1234_7mycrateu7gdb_4a", "_RNwC3foo3bar_", "_RINvC3foo1fKb2_E",
]


@pytest.mark.parametrize("mangled", list(V0) + list(LEGACY))
def test_demangle(mangled):
    assert demangle(mangled) == {**V0, **LEGACY}[mangled]


@pytest.mark.parametrize("name", UNCHANGED)
def test_demangle_keeps_what_it_cannot_read(name):
    assert demangle(name) == name


def doubling(levels):
    """A v0 name whose generic argument is a tuple of two back-references to the previous tuple, `levels` deep."""
    s, prev = "INvC1a1f", None
    for _ in range(levels):
        at = len(s)
        s += "T" + (f"B{b62(prev)}" * 2 if prev is not None else "uu") + "E"
        prev = at
    return "_R" + s + "E"


def test_demangle_backrefs_and_their_limit():
    """Back-references expand; a name built to double 60 times stays mangled instead of eating memory."""
    assert demangle(doubling(1)) == "a::f::<((), ())>"
    assert demangle(doubling(3)) == ("a::f::<((), ()), (((), ()), ((), ())), "
                                     "((((), ()), ((), ())), (((), ()), ((), ())))>")
    assert demangle(doubling(60)) == doubling(60)


def test_demangle_survives_absurd_nesting():
    for name in ("_RINvC1a1f" + "R" * 5000 + "uE", "_R" + "Nv" * 5000 + "C1a" + "1b" * 5000):
        assert demangle(name) == name
    assert demangle("_RINvC1a1f" + "R" * 20 + "uE") == "a::f::<" + "&" * 20 + "()>"


@needs_wasmtime
@pytest.mark.skipif(not READELF or not CXXFILT, reason="readelf and c++filt")
def test_demangle_agrees_with_cxxfilt_on_every_wasmtime_symbol():
    out = run(READELF, "-W", "-s", WASMTIME_LIB)
    names = sorted({p[7] for p in map(str.split, out.splitlines()) if len(p) == 8 and p[7].startswith("_R")})
    theirs = run(CXXFILT, input="\n".join(names)).splitlines()
    assert len(names) > 20000 and len(theirs) == len(names)
    suffix = re.compile(r"(-?\d+|true|false|'.'): (?:[iu](?:8|16|32|64|128|size)|bool|char)")
    wrong = [(n, demangle(n), t) for n, t in zip(names, theirs)
             if demangle(n).partition(".")[0] != suffix.sub(r"\1", re.sub(r"\[[0-9a-f]+\]", "", t))]
    assert wrong == []


@pytest.mark.skipif(not CXXFILT, reason="c++filt")
def test_legacy_demangling_agrees_with_cxxfilt():
    theirs = run(CXXFILT, input="\n".join(LEGACY)).splitlines()
    for mangled, t in zip(LEGACY, theirs):
        assert demangle(mangled).partition(".")[0] == re.sub(r"::h[0-9a-f]{16}$", "", t)


# --------------------------------------------------------------------------- gcc-built shared objects

C_SOURCE = r"""
int counter = 7;
const char ro_table[256] = {1, 2, 3};
char rw_table[1000] = {1};
char zero_table[512];
static int local_state[16] = {1};
__attribute__((visibility("hidden"))) int hidden_value = 5;
int add(int a, int b) { return a + b + local_state[a & 15]; }
static __attribute__((noinline, used)) int helper(int x) { return x * 3 + counter; }
int use_helper(int x) { return helper(x) + hidden_value; }
void *state_ptr(void) { return local_state; }
void *hidden_ptr(void) { return &hidden_value; }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{variant: path} for the source built plain, stripped (-s), and stripped with a build-id debug file."""
    if not GCC:
        pytest.skip("gcc")
    d = tmp_path_factory.mktemp("gcc")
    (d / "t.c").write_text(C_SOURCE)
    out = {}
    for name, extra in (("plain", []), ("stripped", ["-s"]), ("debuglinked", ["-Wl,--build-id"])):
        out[name] = str(d / f"lib{name}.so")
        subprocess.run([GCC, "-shared", "-fPIC", "-O1", "-o", out[name], str(d / "t.c"), *extra], check=True)
    objcopy = shutil.which("objcopy")
    if objcopy:
        bid = ElfSymbols.open(out["debuglinked"]).build_id
        debug = d / "debug" / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
        debug.parent.mkdir(parents=True)
        subprocess.run([objcopy, "--only-keep-debug", out["debuglinked"], str(debug)], check=True)
        subprocess.run([objcopy, "--strip-all", out["debuglinked"]], check=True)
        out["debug_dir"] = str(d / "debug")
    return out


def loaded(path):
    """The library loaded into this process, with its mappings."""
    lib = ctypes.CDLL(path)
    for fn in ("state_ptr", "hidden_ptr"):
        getattr(lib, fn).restype = ctypes.c_void_p
    return lib, maps_of(path)


def address_of(lib, name):
    return ctypes.addressof(ctypes.c_char.in_dll(lib, name))


def test_gcc_plain_object_in_this_process(built):
    lib, maps = loaded(built["plain"])
    s = ElfSymbols.open(built["plain"])
    assert s.tables == ("dynsym", "symtab") and len(maps) >= 3
    base = os.path.basename(built["plain"])
    assert name_address(address_of(lib, "rw_table") + 999, maps) == f"rw_table + 0x3e7 in section .data of {base}"
    assert name_address(address_of(lib, "rw_table") + 1000, maps) != f"rw_table + 0x3e8 in section .data of {base}"
    assert name_address(address_of(lib, "ro_table") + 255, maps) == f"ro_table + 0xff in section .rodata of {base}"
    assert name_address(address_of(lib, "zero_table") + 8, maps) == f"zero_table + 0x8 in section .bss of {base}"
    assert name_address(address_of(lib, "counter"), maps) == f"counter in section .data of {base}"
    add = ctypes.cast(lib.add, ctypes.c_void_p).value
    assert name_address(add, maps) == f"add in section .text of {base}"
    assert name_address(add + 1, maps) == f"add + 0x1 in section .text of {base}"
    # local and hidden symbols are only in .symtab
    assert name_address(lib.state_ptr() + 12, maps) == f"local_state + 0xc in section .data of {base}"
    assert name_address(lib.hidden_ptr(), maps) == f"hidden_value in section .data of {base}"
    bias = s.load_bias(maps)
    assert s.lookup(address_of(lib, "rw_table") - bias).size == 1000
    assert s.lookup(lib.state_ptr() - bias).size == 64 and s.lookup(lib.hidden_ptr() - bias).size == 4


def test_gcc_stripped_object_keeps_only_dynamic_symbols(built):
    lib, maps = loaded(built["stripped"])
    s = ElfSymbols.open(built["stripped"])
    assert s.tables == ("dynsym",)
    base = os.path.basename(built["stripped"])
    bias = s.load_bias(maps)
    assert name_address(address_of(lib, "rw_table") + 1, maps) == f"rw_table + 0x1 in section .data of {base}"
    local = lib.state_ptr() + 12
    assert s.lookup(local - bias) is None
    assert name_address(local, maps) == f"{base} + {local - bias:#x} in section .data"
    assert s.lookup_file_offset(local - bias) is None or s.lookup_file_offset(local - bias).name != "local_state"


def test_gcc_separate_debug_file_by_build_id(built, monkeypatch):
    if "debug_dir" not in built:
        pytest.skip("objcopy")
    monkeypatch.setattr(symbols, "_cache", collections.OrderedDict())
    s = ElfSymbols.open(built["debuglinked"])
    assert s.tables == ("dynsym",)  # no debug directory known yet
    monkeypatch.setattr(symbols, "_cache", collections.OrderedDict())
    monkeypatch.setattr(symbols, "DEBUG_DIRS", ("/nonexistent", built["debug_dir"]))
    s = ElfSymbols.open(built["debuglinked"])
    assert s.tables == ("dynsym", "debug symtab")
    lib, maps = loaded(built["debuglinked"])
    base = os.path.basename(built["debuglinked"])
    assert name_address(lib.state_ptr() + 4, maps) == f"local_state + 0x4 in section .data of {base}"


def test_gcc_32_bit_object(tmp_path):
    """gcc -m32 compiles here without a 32-bit libc; ld links the shared object."""
    ld = shutil.which("ld")
    if not GCC or not ld or not READELF:
        pytest.skip("gcc, ld, readelf")
    (tmp_path / "t.c").write_text(C_SOURCE)
    try:
        subprocess.run([GCC, "-m32", "-fPIC", "-O1", "-c", "-o", str(tmp_path / "t.o"), str(tmp_path / "t.c")],
                       check=True, capture_output=True)
        subprocess.run([ld, "-m", "elf_i386", "-shared", "-o", str(tmp_path / "t32.so"), str(tmp_path / "t.o")],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.skip("no 32-bit gcc/ld")
    path = str(tmp_path / "t32.so")
    s = ElfSymbols.open(path)
    assert s.bits == 32 and s.tables == ("dynsym", "symtab")
    rows = readelf_symbols(path)
    rw, rw_size = next((v, z) for v, (names, z) in rows.items() if "rw_table" in names)
    assert rw_size == {1000}
    assert s.lookup(rw + 999)[:3] == ("rw_table", 999, ".data")
    assert getattr(s.lookup(rw + 1000), "name", None) != "rw_table"
    local = next(v for v, (names, _) in rows.items() if "local_state" in names)
    assert s.lookup(local + 63)[:3] == ("local_state", 63, ".data")


# --------------------------------------------------------------------------- differential: gdb, readelf

def readelf_symbols(path, debug=None):
    """{value: (names, sizes)} of defined symbols, from readelf, plus those of a debug file."""
    rows = collections.defaultdict(lambda: (set(), set()))
    for p in (path, debug):
        if p is None:
            continue
        for f in map(str.split, run(READELF, "-W", "-s", "--dyn-syms", p).splitlines()):
            if len(f) in (8, 9) and f[0].endswith(":") and f[0][:-1].isdigit() and f[6] not in ("UND", "ABS"):
                if f[3] in ("FUNC", "OBJECT", "IFUNC", "NOTYPE"):
                    rows[int(f[1], 16)][0].add(f[7].split("@")[0])
                    rows[int(f[1], 16)][1].add(int(f[2], 0))  # readelf -W prints sizes from 100000 on in hex
    return rows


def debug_file_of(s):
    if not s.build_id:
        return None
    path = f"/usr/lib/debug/.build-id/{s.build_id[:2]}/{s.build_id[2:]}.debug"
    return path if os.path.exists(path) else None


SYSTEM_FILES = [WASMTIME_LIB, "/bin/true", "/bin/sh", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libm.so.6"]


@pytest.mark.skipif(not GDB or not READELF, reason="gdb and readelf")
@pytest.mark.parametrize("path", SYSTEM_FILES, ids=os.path.basename)
def test_agrees_with_gdb_info_symbol(path):
    """Random addresses inside and just past every sized symbol: ours == gdb's, up to aliases.

    gdb also answers with size-0 symbols (`_end`, annobin markers) where this module says no
    symbol; those and symbols defined with several sizes (versioned `sys_errlist`) are skipped.
    """
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    s = ElfSymbols.open(path)
    rows = readelf_symbols(path, debug_file_of(s))
    sized = [(v, max(z)) for v, (_, z) in rows.items() if max(z) > 0]
    rng = random.Random(path)
    addrs = rng.sample(sorted({v + rng.randrange(z) for v, z in sized} | {v + z for v, z in sized}),
                       min(600, 2 * len(sized)))
    cmds = "set print demangle off\nset print asm-demangle off\nset width 0\n"
    out = run(GDB, "-batch", "-nx", "-ex", "set confirm off", *[a for x in cmds.splitlines() for a in ("-ex", x)],
              *[a for x in addrs for a in ("-ex", f"info symbol {x:#x}")], path).splitlines()
    assert len(out) == len(addrs)
    compared = matched_none = 0
    for at, line in zip(addrs, out):
        m = re.match(r"(\S+)(?: \+ (\d+))? in section (\S+)", line)
        hit = s.lookup(at)
        if m is None:
            assert line.startswith("No symbol matches"), line
            assert hit is None, (hex(at), hit)
            matched_none += 1
            continue
        value = at - int(m.group(2) or 0)
        names, sizes = rows.get(value, (set(), set()))
        if m.group(1) not in names or 0 in sizes or len(sizes) > 1:
            continue  # a size-0 symbol (we say none by design) or one of several sizes
        assert hit is not None, (hex(at), line)
        assert (hit.value, hit.offset, hit.section) == (value, int(m.group(2) or 0), m.group(3)), (hex(at), line)
        assert hit.raw in names, (hit.raw, names)
        compared += 1
    assert compared > len(addrs) // 4 and matched_none > 0


@pytest.mark.skipif(not READELF, reason="readelf")
@pytest.mark.parametrize("path", SYSTEM_FILES, ids=os.path.basename)
def test_every_symbol_readelf_lists_is_found(path):
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    s = ElfSymbols.open(path)
    rows = readelf_symbols(path, debug_file_of(s))
    for value, (names, sizes) in rows.items():
        for size in sizes - {0}:
            for at in (value, value + size - 1):
                hit = s.lookup(at)
                assert hit is not None and hit.value <= at < hit.value + hit.size, (hex(at), names)
                if hit.value == value and hit.size == size:
                    assert hit.raw in names
    assert len(s) == len({(v, z) for v, (_, sizes) in rows.items() for z in sizes if z})


# --------------------------------------------------------------------------- wasmtime itself

@needs_wasmtime
def test_wasmtime_library():
    s = ElfSymbols.open(WASMTIME_LIB)
    assert s.tables == ("dynsym", "symtab") and s.bits == 64 and len(s) > 20000
    if not READELF:
        pytest.skip("readelf")
    rows = readelf_symbols(WASMTIME_LIB)
    builtins = next(v for v, (names, _) in rows.items() if names & {k for k, t in V0.items() if t == BUILTINS})
    hit = s.lookup(builtins + 16)
    assert (hit.name, hit.offset, hit.section) == (BUILTINS, 16, ".data.rel.ro") and hit.raw.startswith("_RNvNvMs0_")
    exported = next(v for v, (names, _) in rows.items() if "wasm_engine_new" in names)
    assert s.lookup(exported)[:3] == ("wasm_engine_new", 0, ".text")


@needs_wasmtime
@pytest.mark.skipif(not version("wasmtime").startswith("50."), reason="the scanner knows Wasmtime 50")
def test_a_real_builtins_pointer_and_callee():
    """End to end: scan this process; the scanner names a live context's pointers by symbol."""
    from vmctx_emu.live import scan
    from vmctx_emu.live.example import instantiate

    store, run = instantiate(lambda x: x + 1)
    assert run(store, 1) == 3
    maps = maps_of(WASMTIME_LIB)
    contexts = [c for c in scan().contexts if c.decoded is not None]
    assert contexts
    for ctx in contexts:
        records = {r["field"]: r for r in context_doc(ctx)["records"]}
        builtins = records["builtins"]
        assert name_address(int(builtins["value"], 16), maps) == \
            builtins["points_to"]["text"] == builtins["text"] == f"{BUILTINS} in section .data.rel.ro of _libwasmtime.so"
        assert {k: builtins["points_to"][k] for k in ("kind", "symbol", "offset", "section", "file")} == {
            "kind": "symbol", "symbol": BUILTINS, "offset": 0, "section": ".data.rel.ro", "file": "_libwasmtime.so"}
        if "lowerings[0].callee" in records:
            text = records["lowerings[0].callee"]["points_to"]["text"]
            assert text.endswith(">::cabi_entrypoint in section .text of _libwasmtime.so"), text
    s = ElfSymbols.open(WASMTIME_LIB)
    eh_frame = next(a for a, _, n in s._sections if n == ".eh_frame")  # unwind tables: no symbols
    at = s.load_bias(maps) + eh_frame + 8
    assert name_address(at, maps) == f"_libwasmtime.so + {eh_frame + 8:#x} in section .eh_frame"
    lib = ctypes.CDLL(WASMTIME_LIB)
    assert name_address(ctypes.cast(lib.wasm_engine_new, ctypes.c_void_p).value, maps) == \
        "wasm_engine_new in section .text of _libwasmtime.so"


@needs_wasmtime
def test_load_bias_from_any_one_mapping():
    """Each mapping alone, even the RELRO-split ones whose page two segments share, gives the bias."""
    import wasmtime  # noqa: F401  (maps the library)

    maps = maps_of(WASMTIME_LIB)
    s = ElfSymbols.open(WASMTIME_LIB)
    bias = s.load_bias(maps)
    assert bias == min(m.start for m in maps) and all(s.load_bias([m]) == bias for m in maps)
    moved = [Mapping(m.start - bias + 0x7F1234000000, m.end - bias + 0x7F1234000000, m.perms, m.offset, m.path)
             for m in maps]
    assert s.load_bias(moved) == 0x7F1234000000


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="/proc")
def test_libc_function_in_this_process():
    libc_maps = [m for m in parse_maps(open("/proc/self/maps").read()) if m.path and "libc.so" in m.path]
    if not libc_maps:
        pytest.skip("no libc.so mapped (static or musl)")
    getpid = ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p).value
    base = os.path.basename(libc_maps[0].path)
    assert name_address(getpid, libc_maps) == f"getpid in section .text of {base}"
    assert name_address(getpid + 2, libc_maps) == f"getpid + 0x2 in section .text of {base}"


# --------------------------------------------------------------------------- the scanner's use

class _Target(MemorySource):
    """A target that mapped `path` (first page `head`, or none kept) at `start`; `live` for a running process."""

    def __init__(self, path, head, live, start=0x7F00_0000_0000, pid=None):
        super().__init__()
        size = os.path.getsize(path) // 4096 * 4096
        self._maps = [Mapping(start, start + size, "r-xp", 0, path)]
        self.head, self.live, self.pid, self.start = head, live, pid, start
        self.description = "a test target"

    def mappings(self):
        return list(self._maps)

    def _read(self, address, size):
        if self.head is None or not self.start <= address <= address + size <= self.start + len(self.head):
            raise UnreadableMemoryError("not kept", address=address, size=size, reason="not kept")
        return self.head[address - self.start:address - self.start + size]


@pytest.mark.parametrize("head, live, named", [
    ("same", False, True),       # a core whose first page is this machine's file: symbols
    ("other", False, False),     # a core from another build: file + offset only
    ("other", True, False),      # a live process whose path now holds another file
    (None, True, False),         # a live process whose first page cannot be read: nothing proves it is this file
    (None, False, False),        # a core that kept no first page: nothing proves it is this file
])
def test_the_scanner_names_symbols_only_from_the_file_the_target_mapped(head, live, named):
    from vmctx_emu.live.images import Images
    from vmctx_emu.live.namer import AddressMap, PointerNamer

    path = os.path.realpath(sys.executable)
    elf = ElfSymbols.open(path)
    if elf is None or not len(elf):
        pytest.skip(f"{path} has no symbols")
    with open(path, "rb") as f:
        page = f.read(4096)
    first = {"same": page, "other": page[:64] + bytes(64) + page[128:], None: None}[head]
    target = _Target(path, first, live, pid=NO_SUCH_PID if live else None)
    text_at = next(a for a, e, n in elf._sections if n == ".text")
    address = elf.load_bias(target.mappings()) + text_at
    namer = PointerNamer(target, AddressMap(target.mappings()), Images(target, target.mappings()), set(), None)
    symbolic = name_address(address, target.mappings(), symbols=elf)
    plain = f"{os.path.basename(path)} + {address - target.start:#x} (r-xp)"
    assert symbolic != plain
    assert namer.where(address) == (symbolic if named else plain)


def test_a_live_process_is_named_from_the_file_it_maps_even_when_its_path_changed(tmp_path):
    """/proc/PID/map_files is the mapped inode itself: a path that now holds another file does not matter."""
    from vmctx_emu.live.images import Images
    from vmctx_emu.live.process import ProcessSource

    with ProcessSource(os.getpid()) as src:
        libc = [m for m in src.mappings() if m.path and os.path.basename(m.path).startswith("libc.so")]
        if not libc or not os.access(f"/proc/self/map_files/{libc[0].start:x}-{libc[0].end:x}", os.R_OK):
            pytest.skip("no libc.so mapped, or /proc/PID/map_files is not readable here")
        images = Images(src, src.mappings(), locate=lambda path: str(tmp_path / "absent"))
        path, why = images.trusted_file(images.image_of(libc[0]))
    assert path.startswith(f"/proc/{os.getpid()}/map_files/") and "the file it maps" in why


class _Bytes:
    """A source holding `data` at `start`, nothing else."""

    def __init__(self, start, data):
        self.start, self.data = start, data

    def read(self, address, size):
        return self.data[address - self.start:address - self.start + size]


@pytest.mark.parametrize("past_end, mismatch", [(b"", None), (b"\1", (300, 0x10000 + 300))],
                         ids=["zeros-past-the-end", "a-byte-past-the-end"])
def test_a_file_shorter_than_its_mapped_page_compares_equal_to_its_zero_filled_page(tmp_path, past_end, mismatch):
    """Regression (found by tests/test_hostile_bounds.py): a 300-byte file mapped as one page was refused as
    "another build" because the page's 3,796 zeros past the file's end were compared with nothing."""
    from vmctx_emu.live.images import compare_file

    data = bytes(range(256)) + b"x" * 44
    page = (data + past_end).ljust(4096, b"\0")
    (tmp_path / "small.so").write_bytes(data)
    with open(tmp_path / "small.so", "rb") as f:
        got = compare_file(_Bytes(0x10000, page), f, [Mapping(0x10000, 0x11000, "r-xp", 0, str(tmp_path / "small.so"))])
    assert got == (mismatch, [] if mismatch else [0])  # (the first difference, the file offsets of the pages compared)
