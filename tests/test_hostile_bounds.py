"""Issue 20 at the command line: every hostile input the other hostile tests build, run through `vmctx-emu` in a
subprocess, answers within HOSTILE_SECONDS (the interpreter's start-up, `vmctx-emu --help`, not counted) and
HOSTILE_MIB of peak resident memory, with its documented exit status and, for bad input, one error line.

The inputs come from the builders of test_hostile_cores, test_hostile_symbols,
test_hostile_names and test_infer; the ELF symbol reader and the demangler are reached
through `where` on a small core that maps a symbol file (the scan trusts the
file because the core holds its bytes, then names the address from its table).
"""

import os
import re
import sys

import pytest

from bounded import HOSTILE_MIB, HOSTILE_SECONDS, run, startup_seconds
from test_hostile_cores import (EHDR, PHDR, PT_LOAD, PT_NOTE, _ONE_SEGMENT, _SEED, core, ehdr, gzip_members,
                                nt_file, phdr, shdr)
from test_infer import instance as infer_instance
from test_hostile_symbols import BASE, HOSTILE_NAMES, doubled_long_ident, elf_file, func
from vmctx_emu import OwnedComponentInstance
from vmctx_emu.demo import SAMPLE_COMPONENT
from vmctx_emu.layouts.releases import LAYOUTS

ERROR_LINE = re.compile(rb"vmctx-emu( [a-z]+)?: error: [^\n]+\n")
LOAD = 0x7F0000000000  # where the mapping core maps its symbol file
RELEASE = "50.0.1"  # a core with no Wasmtime in it is read as this release (`--wasmtime`)


@pytest.fixture(scope="module")
def startup():
    """Seconds `vmctx-emu --help` takes here (about 0.06 s on the machine this was written on): what every
    command pays before reading its input, so not counted against HOSTILE_SECONDS."""
    return startup_seconds()


def mapping_core(tmp_path, so, name=b"lib.so"):
    """(core path, address): a core in folder `tmp_path` (a relative one is recorded so in NT_FILE) whose NT_FILE
    maps `so` (written beside it) read-only at LOAD, holding its
    bytes; `address` is 0x10 past BASE's runtime address, inside the first symbol of the symbol files here."""
    lib = os.path.join(os.fsencode(tmp_path), name)
    with open(lib, "wb") as f:
        f.write(so)
    size = len(so) + -len(so) % 4096
    notes = nt_file([(LOAD, LOAD + size, 0, lib)])
    head = EHDR + 2 * PHDR
    headers = (phdr(PT_NOTE, head, 0, len(notes), 0, flags=0, align=4)
               + phdr(PT_LOAD, head + len(notes), LOAD, size, size, flags=5))
    path = os.path.join(tmp_path, "mapping.core")
    with open(path, "wb") as f:
        f.write(ehdr(phnum=2) + headers + notes + so + bytes(size - len(so)))
    return path, LOAD + 0x10  # the file's one PT_LOAD maps file offset 0 at BASE


def symbol_file(name):
    """A symbol file whose one function, at BASE, is named `name`."""
    return elf_file([func(1, BASE, 0x100)], b"\0" + name.encode() + b"\0")


def where_symbol(name):
    def build(tmp_path):
        path, address = mapping_core(tmp_path, symbol_file(name))
        return ["where", "--wasmtime", RELEASE, "--core", path, hex(address)]
    return build


def where_damaged(tables, strtab):
    def build(tmp_path):
        path, address = mapping_core(tmp_path, elf_file(tables, strtab))
        return ["where", "--wasmtime", RELEASE, "--core", path, hex(address)]
    return build


def scan_core(data, name="hostile.core"):
    def build(tmp_path):
        path = os.path.join(os.fsencode(tmp_path), os.fsencode(name))
        with open(path, "wb") as f:
            f.write(data() if callable(data) else data)
        return ["scan", "--core", path]
    return build


def fifo_dump(tmp_path):
    os.mkfifo(tmp_path / "fifo.bin")  # no writer: a blocking open waits forever
    return ["decode", tmp_path / "fifo.bin"]


def fifo_sidecar(tmp_path):
    path = OwnedComponentInstance(SAMPLE_COMPONENT, (0x1000, 0x2000)).dump(tmp_path / "s.bin")
    os.unlink(f"{path}.json")
    os.mkfifo(f"{path}.json")
    return ["decode", path]


def demo_into_bytes_name(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"dumps\xff")
    os.mkdir(folder)
    return ["demo", "--dump", folder]


def many_nt_file_entries():
    count = 200_000
    entries = [(0x10000 + i * 4096, 0x10000 + (count + 10) * 4096 + i, i, b"f") for i in range(count)]
    return core([(0x10000 + i * 0x40000, 8192, None, 0) for i in range(1000)], nt_file(entries))


def infer_296_bytes(tmp_path):
    """A 296-byte dump with 268,413 shapes per release from v30 on, every one of them asked for (class 16)."""
    layout = next(l for l in LAYOUTS if l.id == "L9")
    path = tmp_path / "ctx.bin"
    path.write_bytes(infer_instance(layout, {"num_runtime_memories": 33}, 8, "little").to_bytes())
    return ["infer", path, "--limit", "4294967295"]


def gzip_bomb():
    """A small core, then 192 MB of zeros: 200 KB of gzip (class 10)."""
    return gzip_members((_ONE_SEGMENT, 1), (bytes(16 << 20), 12))


OVERLAPPING = b"".join(func(1, BASE + 16 * i, 16) for i in range(1000))  # 8 table headers name these bytes


# (id, argv builder, exit status, bytes the output must hold (stderr for status 2, else stdout))
CASES = [
    ("core e_phoff 2**63", scan_core(ehdr(phoff=2 ** 63, phnum=1)), 2, b"e_phoff = 0x8000000000000000"),
    ("core 4G program headers from sh_info", scan_core(ehdr(shoff=64, phoff=128, phnum=0xFFFF) + shdr(0xFFFFFFFF)),
     2, b"4294967295 program headers"),
    ("core fuzz seed cut in its notes", scan_core(_SEED[:EHDR + 3 * PHDR + 40]), 0, b"Wasmtime unknown"),
    ("core 200k overlapping NT_FILE entries", scan_core(many_nt_file_entries), 0, b"0 component contexts"),
    ("core 65,000 empty segments", scan_core(lambda: core([(0x10000 + i * 0x2000, 4096, None, 0)
                                                           for i in range(65_000)])), 0, b"0 component contexts"),
    ("core 20,000 segments on 1 MB", scan_core(lambda: core([(0x10000 + i * 0x200000, 1 << 20, 0, 1 << 20)
                                                            for i in range(20_000)], data=bytes(1 << 20))),
     0, b"0 component contexts"),
    ("gzip core of 192 MB of zeros past its segments", scan_core(gzip_bomb, "bomb.core.gz"), 0,
     b"the rest was not decompressed"),
    ("infer --limit 4294967295 on a 296-byte dump", infer_296_bytes, 2, b"list fewer (--limit N"),
    ("core named in non-UTF-8 bytes", scan_core(ehdr(phoff=2 ** 63, phnum=1), b"c\xff.core"), 2, b".core: damaged ELF"),
    ("dump that is a FIFO", fifo_dump, 2, b"not a regular file"),
    ("sidecar that is a FIFO", fifo_sidecar, 2, b"not a regular file"),
    ("demo into a non-UTF-8 directory", demo_into_bytes_name, 0, b"dumps\xff"),
    ("--wasmtime of 4,400 digits", lambda tmp_path: ["layout", "--wasmtime", "9" * 4400], 2,
     b"not a Wasmtime version"),
    ("--wasmtime of 100,000 digits", lambda tmp_path: ["layout", "--wasmtime", "1" * 100_000], 2,
     b"not a Wasmtime version"),
    ("symbol file with 3,000 symbol tables", where_damaged([func(1 + 7 * i, BASE + 16 * i, 16) for i in range(3000)],
                                                         b"\0" + b"".join(f"f{i:05}".encode() + b"\0"
                                                                          for i in range(3000))),
     0, b"lib.so + 0x"),
    ("symbol file whose tables overlap", where_damaged([OVERLAPPING] + [(64 + PHDR, len(OVERLAPPING))] * 7,
                                                       b"\0f\0"), 0, b"lib.so + 0x"),
    ("symbol demangled to 435 KB of 145 KB identifiers (short_name was quadratic in them)",
     where_symbol(doubled_long_ident(145_000, 1)), 0, b"0x7f0000000010: a::f::<(xxx"),
] + [(f"symbol {what}", where_symbol(name), 0, name[:200].encode()) for what, name in HOSTILE_NAMES.items()]


@pytest.mark.parametrize("build, status, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_input_answers_within_bounds(tmp_path, startup, build, status, needle):
    ran = run(build(tmp_path))
    assert ran.status == status, (ran.status, ran.err[-2000:])
    assert b"Traceback" not in ran.stderr, ran.err[-2000:]
    if status == 2:
        assert ERROR_LINE.fullmatch(ran.stderr) and not ran.stdout, ran.stderr
    assert needle in (ran.stderr if status == 2 else ran.stdout), (ran.stdout[-2000:], ran.stderr[-2000:])
    assert ran.seconds - startup <= HOSTILE_SECONDS, f"{ran.seconds:.2f} s ({startup:.2f} s of it start-up)"
    assert ran.mib <= HOSTILE_MIB, f"{ran.mib:.0f} MiB"


def test_the_measure_sees_time_and_memory():
    """The helper measures the command, not itself: a child that holds 300 MiB for 0.3 s reads as such."""
    ran = run(["-c", "import time; b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"],
              command=[sys.executable])
    assert ran.status == 0 and ran.seconds >= 0.3 and 300 <= ran.mib < 400 and not ran.within()
