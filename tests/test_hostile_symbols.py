"""Issue 20, classes 2, 6, 12 and 18: hostile symbol names, symbol files and images cost bounded time and memory.

Each case runs under `bounded`: within HOSTILE_SECONDS and HOSTILE_MIB (tracemalloc's
peak of Python allocations, numpy's included), raising or not. The ELF files are written here, small,
64-bit little-endian, with only what the symbol reader reads.
"""

import os
import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from bounded import HOSTILE_MIB, HOSTILE_SECONDS
from conftest import FUZZING, fuzz_examples

from vmctx_emu.errors import ArgumentTypeError, ArgumentValueError, SymbolFileError, UnreadableMemoryError, \
    VMCtxEmuError
from vmctx_emu.live import elf
from vmctx_emu.live.demangle import MAX_OUTPUT, demangle
from vmctx_emu.live.images import Images
from vmctx_emu.live.source import Mapping
from vmctx_emu.live.symbols import ElfSymbols, address_parts, name_address

SECONDS, BYTES = HOSTILE_SECONDS, HOSTILE_MIB << 20
B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def bounded(call):
    """call(), asserting it took < SECONDS and allocated < BYTES at its peak, whether it returned or raised."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return call()
    finally:
        elapsed, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < SECONDS, f"{elapsed:.2f} s"
        assert peak < BYTES, f"{peak / 2**20:.0f} MiB"


def b62(n):
    """A v0 base-62 number as the mangling writes it (0 is "_", n is n-1 in base 62 then "_")."""
    if n == 0:
        return "_"
    n, out = n - 1, ""
    while True:
        n, r = divmod(n, 62)
        out = B62[r] + out
        if not n:
            return out + "_"


def doubled_long_ident(length, levels):
    """A v0 name: a tuple holding an identifier of `length` characters, then `levels` tuples of two
    back-references to the tuple before: the reading doubles per level."""
    s = "INvC1a1f"
    prev = len(s)
    s += f"TC{length}_" + "x" * length + "E"
    for _ in range(levels):
        at = len(s)
        s += "T" + f"B{b62(prev)}" * 2 + "E"
        prev = at
    return "_R" + s + "E"


# ------------------------------------------------------------------------ class 2: the demangler

HOSTILE_NAMES = {
    "binder of 14.7M lifetimes (was 92 MB, 785 MiB)": "_RINvC1a1bFGzzzz_EuE",
    "binder of 916M lifetimes (was MemoryError)": "_RINvC1a1bFGzzzzz_EuE",
    "binder count past u64": "_RINvC1a1bFG" + "z" * 40 + "_EuE",
    "145 KB identifier doubled by back-references (was 1.5 GB)": doubled_long_ident(145_000, 14),
    "a tuple doubled 60 times": doubled_long_ident(1, 60),
    "a 200,000-digit base-62 back-reference (was 48 s)": "_RINvC1a1fB" + "z" * 200_000 + "_E",
    "a 5,000-digit identifier length (v0)": "_RNvC1a" + "9" * 5000 + "x",
    "a 5,000-digit identifier length (legacy, was ValueError)": "_ZN" + "9" * 5000 + "aE",
    "200,000 unit types in a tuple": "_RINvC1a1fT" + "u" * 200_000 + "EE",
    "100,000 nested tuples": "_RINvC1a1fT" + "TTTuEEE" * 100_000 + "EE",
    "empty crate names nested 3,000 deep": "_R" + "NvNv" * 3000 + "C0_" + "0_" * 6000,
    "references nested 100,000 deep": "_RINvC1a1f" + "R" * 100_000 + "uE",
    "a long punycode identifier": "_RNvC1au" + f"{20_000}" + "a" * 20_000 + "_" + "b" * 0,
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
def test_a_hostile_name_stays_mangled_within_bounds(name):
    assert bounded(lambda: demangle(name)) == name


def test_the_bounds_keep_real_names():
    """What the limits let through: deep but reasonable nesting, and a doubling that stays small."""
    assert demangle("_RINvC1a1f" + "R" * 100 + "uE") == "a::f::<" + "&" * 100 + "()>"
    assert demangle(doubled_long_ident(3, 4)) == "a::f::<(xxx,), " + ", ".join(
        _doubled("(xxx,)", n) for n in range(1, 5)) + ">"
    assert demangle("_RINvC1a1bFG_EuE") == "a::b::<for<'a> fn()>"


def _doubled(inner, levels):
    for _ in range(levels):
        inner = f"({inner}, {inner})"
    return inner


@pytest.mark.parametrize("bad", [None, 42, b"_RNvC1a1b", ["_R"], ("_ZN",)], ids=repr)
def test_demangle_argument_type(bad):
    with pytest.raises(ArgumentTypeError, match="name must be a str") as e:
        demangle(bad)
    assert e.value.argument == "name" and e.value.value is bad


V0_PIECES = ["_R", "N", "v", "C", "I", "E", "B", "T", "F", "G", "K", "L", "D", "R", "Q", "A", "S", "M", "X", "Y",
             "u", "p", "z", "_", "0", "1", "9", "a", "zz_", "1a", "3abc", "s_", "h", "U", "Kj1_", "Lb_", "y", "l"]


@settings(max_examples=fuzz_examples(1500), deadline=None, derandomize=not FUZZING)
@given(st.sampled_from(["_R", "_RIN", "_ZN"]).flatmap(lambda head: st.lists(st.sampled_from(V0_PIECES), max_size=60)
                                                      .map(lambda parts: head + "".join(parts))))
def test_fuzz_demangle_bounded_output_and_only_package_errors(name):
    try:
        out = demangle(name)
    except VMCtxEmuError:
        raise AssertionError(f"{name!r}: a str never raises") from None
    assert isinstance(out, str) and len(out) <= max(len(name), MAX_OUTPUT)


@settings(max_examples=fuzz_examples(300), deadline=None, derandomize=not FUZZING)
@given(st.text(max_size=200))
def test_fuzz_demangle_any_text(name):
    out = demangle(name)
    assert isinstance(out, str) and len(out) <= max(len(name), MAX_OUTPUT)
    assert out == name or name.startswith(("_R", "_ZN"))


# ------------------------------------------------------------------ class 12: the symbol reader

BASE = 0x10000
SYM = struct.Struct("<IBBHQQ")  # name, info, other, shndx, value, size
SECTION = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, align, entsize
PROGRAM = struct.Struct("<IIQQQQQQ")  # type, flags, offset, vaddr, paddr, filesz, memsz, align


def elf_file(symtabs, strtab, loads=((0, BASE, 0x1000, 0x1000),)):
    """A 64-bit little-endian ET_DYN: `symtabs` as (offset, size) of symbol records in the file or bytes to
    place, all linked to one `strtab`; `loads` as (offset, vaddr, filesz, memsz) PT_LOADs."""
    shstr = b"\0.strtab\0.symtab\0.shstrtab\0"
    blob = bytearray(64 + PROGRAM.size * len(loads))
    ranges = []
    for table in symtabs:
        if isinstance(table, bytes):
            ranges.append((len(blob), len(table)))
            blob += table
        else:
            ranges.append(table)
    str_off = len(blob)
    blob += strtab
    shstr_off = len(blob)
    blob += shstr + bytes(-(len(blob) + len(shstr)) % 8)
    shoff = len(blob)
    headers = [(0,) * 10, (1, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0),
               (17, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)]
    headers += [(9, 2, 0, 0, off, size, 1, 0, 8, SYM.size) for off, size in ranges]
    for h in headers:
        blob += SECTION.pack(*h)
    for i, (offset, vaddr, filesz, memsz) in enumerate(loads):
        blob[64 + i * PROGRAM.size:64 + (i + 1) * PROGRAM.size] = PROGRAM.pack(1, 5, offset, vaddr, vaddr, filesz,
                                                                               memsz, 0x1000)
    blob[:64] = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, 62, 1, 0, 64, shoff, 0,
                            64, PROGRAM.size, len(loads), SECTION.size, len(headers), 2)
    return bytes(blob)


def func(name_at, value, size):
    return SYM.pack(name_at, 1 << 4 | 2, 0, 1, value, size)  # GLOBAL FUNC in section 1


@pytest.fixture
def written(tmp_path):
    def write(data, name="hostile.so"):
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)
    yield write
    ElfSymbols.forget()


def test_symbol_tables_sharing_one_string_table_read_it_once(written):
    """8 tables naming into one 8 MB string table: one read of it, not a copy per table."""
    strtab = b"\0" + b"".join(f"f{i:05}".encode() + b"\0" for i in range(8)) + b"\0" * (8 << 20)
    tables = [func(1 + 7 * i, BASE + 16 * i, 16) for i in range(8)]
    elf = bounded(lambda: ElfSymbols.open(written(elf_file(tables, strtab))))
    assert len(elf) == 8 and elf.lookup(BASE + 16 * 7 + 3).raw == "f00007" and len(elf._strtab) == len(strtab)


def test_thousands_of_symbol_tables_are_damage(written):
    """3,000 tables of one symbol each sharing one string table (was 39 s for a 129 KB file)."""
    strtab = b"\0" + b"".join(f"f{i:05}".encode() + b"\0" for i in range(3000)) + b"\0" * 40_000
    tables = [func(1 + 7 * i, BASE + 16 * i, 16) for i in range(3000)]
    path = written(elf_file(tables, strtab))
    with pytest.raises(SymbolFileError, match="more than 8 symbol tables"):
        bounded(lambda: ElfSymbols.open(path))


def test_symbol_tables_that_overlap_are_damage(written):
    """8 table headers over the same 24 KB of records: more table than file, refused before reading."""
    records = b"".join(func(1, BASE + 16 * i, 16) for i in range(1000))
    ranges = [(64 + PROGRAM.size, len(records))] * 8
    path = written(elf_file([records] + ranges[1:], b"\0f\0"), "overlap.so")
    with pytest.raises(SymbolFileError, match="add up to more than the file"):
        bounded(lambda: ElfSymbols.open(path))


def test_lookup_among_nested_symbols_is_logarithmic(written):
    """One symbol spanning 200,000 small ones: a pointer past the small ones finds the big one at once
    (was a walk over all of them per pointer)."""
    n = 200_000
    records = func(1, BASE, 4 * n) + b"".join(func(5, BASE + 2 * i, 1) for i in range(n))
    elf = ElfSymbols.open(written(elf_file([records], b"\0big\0small\0")))
    assert len(elf) == n + 1

    def lookups():
        return [elf.lookup(BASE + 2 * n + k) for k in range(2000)] + [elf.lookup(BASE + 2 * k) for k in range(2000)]

    hits = bounded(lookups)
    assert {h.raw for h in hits[:2000]} == {"big"} and {h.raw for h in hits[2000:]} == {"small"}
    assert elf.lookup(BASE + 4 * n) is None and elf.lookup(BASE - 1) is None


def test_load_bias_of_a_library_mapped_3000_times(written):
    """1,000 PT_LOADs and 3,000 mappings, asked once per pointer: one vote, bounded, then a cached answer."""
    loads = [(0x1000 * i, BASE + 0x1000 * i, 0x1000, 0x1000) for i in range(1000)]
    path = written(elf_file([func(1, BASE, 16)], b"\0f\0", loads))
    load = 0x7F0000000000
    maps = [Mapping(load + 0x1000 * i, load + 0x1000 * (i + 1), "r--p", 0x1000 * i, path) for i in range(3000)]
    elf = ElfSymbols.open(path)
    parts = bounded(lambda: [address_parts(load - BASE + BASE + k, maps, symbols=elf) for k in range(2000)])
    assert elf.load_bias(maps) == load - BASE
    assert parts[3]["symbol"] == "f" and parts[3]["offset"] == 3


@pytest.mark.parametrize("args, error, argument", [
    (("0x1000", []), ArgumentTypeError, "address"),
    ((-1, []), ArgumentValueError, "address"),
    ((2**64, []), ArgumentValueError, "address"),
    ((0x1000, None), ArgumentTypeError, "mappings"),
    ((0x1000, "/lib/x.so"), ArgumentTypeError, "mappings"),
    ((0x1000, [1]), ArgumentTypeError, "mappings[0]"),
    ((0x1000, [{"start": 0}]), ArgumentTypeError, "mappings[0]"),
], ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__)
def test_name_address_argument_errors(args, error, argument):
    for call in (name_address, address_parts):
        with pytest.raises(error) as e:
            call(*args)
        assert e.value.argument == argument


def test_name_address_symbols_argument():
    with pytest.raises(ArgumentTypeError, match="symbols must be an ElfSymbols"):
        name_address(0x1000, [Mapping(0x1000, 0x2000, "r--p", 0, "/x.so")], symbols="/x.so")


# ------------------------------------------------------- class 6: an image's bytes read from disk

class NothingInMemory:
    """A non-live source (as a core) that holds none of the image's bytes."""

    live = False

    def iter_chunks(self, mapping, chunk=None):
        raise UnreadableMemoryError("not in the core", address=mapping.start, size=mapping.size)
        yield  # a generator, as the real one

    def read(self, address, size):
        raise UnreadableMemoryError("not in the core", address=address, size=size)


@pytest.fixture
def planted(tmp_path):
    """A 3 GB sparse file (no disk blocks) with a Wasmtime version literal at 0x3000; removed afterwards."""
    path = tmp_path / "libwasmtime.so"
    with open(path, "wb") as f:
        f.truncate(3 << 30)
        f.seek(0x3000)
        f.write(b"\0" + b"42.0.0\n\nThis is a bug in Wasmtime")
    yield str(path)
    path.unlink()


@pytest.mark.parametrize("mapped", [0x10000, 3 << 30], ids=["64KiB-mapped", "3GiB-mapped"])
def test_version_from_disk_reads_only_mapped_ranges(planted, mapped):
    """The image's read-only mappings, not the file, bound the read: 64 KiB mapped reads 64 KiB; a mapping
    claiming all 3 GB reads at most MAX_FILE_SCAN (was the whole file: 3.1 GB, 17-29 s)."""
    maps = [Mapping(0x7F0000000000, 0x7F0000000000 + mapped, "r--p", 0, planted),
            Mapping(0x7F0000000000 + mapped, 0x7F0000000000 + mapped + 0x1000, "rw-p", mapped, planted)]
    images = Images(NothingInMemory(), maps, verified={planted: (planted, "the file given")})
    version, where = bounded(lambda: images.version(images.images[planted]))
    assert version == "42.0.0" and "not in the target's memory" in where


def test_version_from_disk_not_in_mapped_ranges(planted):
    """A version literal outside what the target maps is not the image's."""
    maps = [Mapping(0x7F0000000000, 0x7F0000001000, "r--p", 0, planted)]
    images = Images(NothingInMemory(), maps, verified={planted: (planted, "the file given")})
    version, where = bounded(lambda: images.version(images.images[planted]))
    assert version is None and "no version string" in where


# ------------------------------------------------------- fuzz: mutated symbol files, only the package's errors

def elf_fields(data):
    """(what, file offset, width) of every ELF, program and section header field of a 64-bit little-endian
    file, of each symbol table's first records and of each string table's bytes: where a mutation lands."""
    dt = {kind: elf.dtype(kind, 64, "<") for kind in ("ELF header", "program headers", "section headers",
                                                        "symbol table")}

    def record(kind, label, at):
        return [(f"{label}.{name}", at + dt[kind].fields[name][1], dt[kind][name].itemsize)
                for name in dt[kind].names if name != "ident"]

    eh = elf.header(data, 64, "<")
    out = record("ELF header", "e", 0)
    for i in range(int(eh["phnum"])):
        out += record("program headers", f"ph[{i}]", int(eh["phoff"]) + i * dt["program headers"].itemsize)
    shoff = int(eh["shoff"])
    sh = elf.section_headers(data[shoff:], int(eh["shnum"]))
    for i, s in enumerate(sh):
        out += record("section headers", f"sh[{i}]", shoff + i * dt["section headers"].itemsize)
        offset, size = int(s["offset"]), int(s["size"])
        if s["type"] in (elf.SHT_SYMTAB, elf.SHT_DYNSYM):
            for k in range(min(size // dt["symbol table"].itemsize, 8)):
                out += record("symbol table", f"sh[{i}].sym[{k}]", offset + k * dt["symbol table"].itemsize)
        elif s["type"] == elf.SHT_STRTAB:
            out += [(f"sh[{i}].str[{k}]", offset + k, 1) for k in range(min(size, 64))]
    return out


def _seed_so():
    """A small ET_DYN with one PT_LOAD, a symbol table of nested, aliased and Rust-mangled symbols."""
    names = [b"outer", b"_ZN4core3fmt5write17h0123456789abcdefE", b"_RNvC1a1f", b"__alias", b"alias", b"data"]
    strtab = b"\0" + b"".join(n + b"\0" for n in names)
    at = [1 + sum(len(n) + 1 for n in names[:i]) for i in range(len(names))]
    records = (func(at[0], BASE, 0x100) + func(at[1], BASE + 0x10, 0x20) + func(at[2], BASE + 0x40, 8)
               + func(at[3], BASE + 0x80, 0x10) + func(at[4], BASE + 0x80, 0x10)
               + SYM.pack(at[5], 1 << 4 | 1, 0, 1, BASE + 0x800, 0x40))  # GLOBAL OBJECT
    return elf_file([records], strtab)


SMALL_LIBRARY = "/usr/lib/x86_64-linux-gnu/libBrokenLocale.so.1"  # glibc's, 15 KB: .dynsym, notes, 30 sections
SEEDS = {"struct-built": _seed_so()}
if os.path.isfile(SMALL_LIBRARY) and os.path.getsize(SMALL_LIBRARY) < 1 << 20:
    with open(SMALL_LIBRARY, "rb") as _f:
        SEEDS["libBrokenLocale.so.1"] = _f.read()
SEED_FIELDS = {name: elf_fields(data) for name, data in SEEDS.items()}


def _interesting(data, width):
    """Values a hostile field takes: edges of its width and of the file."""
    top = (1 << 8 * width) - 1
    return st.one_of(st.sampled_from([0, 1, 2, 3, 8, 24, 64, len(data) - 1, len(data), len(data) + 1, top >> 1,
                                      top - 1, top, elf.XNUM, 0xFF00]), st.integers(0, top)).map(lambda v: v & top)


@st.composite
def mutated_elf(draw):
    """(seed name, its bytes with up to 6 field-aware edits, then maybe cut short)."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data, fields = bytearray(SEEDS[name]), SEED_FIELDS[name]
    for _ in range(draw(st.integers(1, 6))):
        what, at, width = draw(st.sampled_from(fields))
        data[at:at + width] = draw(_interesting(data, width)).to_bytes(width, "little")
    if draw(st.integers(0, 9)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return name, bytes(data)


def exercise_symbols(path):
    """Everything a caller asks of one file's symbols (None: not ELF); only the package's errors escape."""
    found = ElfSymbols.open(path)
    if found is None:
        return None
    repr(found)
    maps = [Mapping(0x7F0000000000, 0x7F0000000000 + 0x2000, "r-xp", 0, path)]
    for address in (BASE, BASE + 0x10, BASE + 0x44, BASE + 0x80, BASE + 0x810, 0, 0x1000, 2**64 - 1):
        hit = found.lookup(address)
        if hit is not None:
            repr(hit), hit.name
        found.section_at(address), found.in_image(address), found.lookup_file_offset(address & 0xFFFF)
    found.load_bias(maps)
    for k in range(0, 0x2000, 0x3F0):
        name_address(0x7F0000000000 + k, maps, symbols=found)
    return found


@settings(max_examples=fuzz_examples(300), deadline=None, derandomize=not FUZZING,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated_elf())
def test_fuzzed_symbol_files_raise_only_package_errors(written, case):
    name, data = case
    path = written(data, "fuzzed.so")
    ElfSymbols.forget()
    try:
        found = bounded(lambda: exercise_symbols(path))
    except VMCtxEmuError as e:
        event(f"{name}: {type(e).__name__}")
        assert "\n" not in str(e), str(e)
        return
    event(f"{name}: {'not ELF' if found is None else 'symbols' if len(found) else 'no symbols'}")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_fuzz_seeds_are_read_whole(written, name):
    """The mutations start from files the reader reads without damage, symbols and all."""
    found = exercise_symbols(written(SEEDS[name], name))
    assert found is not None and len(found) and {"dynsym", "symtab"} & set(found.tables)
    if name == "struct-built":
        assert [found.lookup(BASE + k).raw for k in (0x8, 0x18, 0x44, 0x88)] == [
            "outer", "_ZN4core3fmt5write17h0123456789abcdefE", "_RNvC1a1f", "alias"]
