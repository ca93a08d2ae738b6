"""Read-only memory sources: this process, a child by pid, its gcore (plain, gzip, cut), synthetic cores, bad input."""

import errno
import gzip
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu.errors import (AccessDeniedError, ArgumentTypeError, ArgumentValueError, ClosedError, CoreFileError,
                              LiveError, NoSuchProcessError, ProcessGoneError, UnreadableMemoryError, VMCtxEmuError)
from vmctx_emu.live import process
from vmctx_emu.live.core import CoreFileSource
from vmctx_emu.live.process import ProcessSource, parse_maps
from vmctx_emu.live.source import Mapping
from vmctx_emu.live.target import open_source

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="live sources read Linux /proc")

PYTHON_BINARY = os.path.realpath(sys.executable)
PATTERN = bytes(range(256)) * 24 + b"vmctx-emu live sources"
CHILD = f"""
import sys, time
pattern = bytes(range(256)) * 24 + b"vmctx-emu live sources"
print(id(pattern) + bytes.__basicsize__ - 1, flush=True)
time.sleep(600)
"""
NO_SUCH_PID = 4194304 + 17  # above the largest pid_max Linux allows


def spawn_child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def stop(proc):
    proc.kill()
    proc.wait()
    proc.stdout.close()


def state_of(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rpartition(b")")[2].split()[0].decode()


def containing(mappings, address):
    return next(m for m in mappings if m.start <= address < m.end)


# --------------------------------------------------------------------------- synthetic ELF cores

def note(name, ntype, desc):
    name += b"\0"
    return (struct.pack("<III", len(name), len(desc), ntype) + name + b"\0" * (-len(name) % 4)
            + desc + b"\0" * (-len(desc) % 4))


def nt_file(entries, page_size=0x1000):
    """NT_FILE for [(start, end, page offset, path)]."""
    table = b"".join(struct.pack("<QQQ", s, e, p) for s, e, p, _ in entries)
    return note(b"CORE", 0x46494C45, struct.pack("<QQ", len(entries), page_size) + table
                + b"".join(path.encode() + b"\0" for *_, path in entries))


def nt_prpsinfo(pid):
    desc = bytearray(136)
    struct.pack_into("<i", desc, 24, pid)
    desc[40:46] = b"target"
    return note(b"CORE", 3, bytes(desc))


def elf_core(loads, notes=b"", *, machine=62, e_type=4, ident=None, xnum=False):
    """An ELF64 core: PT_NOTE (if any notes) then one PT_LOAD per (vaddr, flags, data, memsz), data after headers."""
    phnum = len(loads) + bool(notes)
    offset = 64 + 56 * phnum + (64 if xnum else 0)
    phdrs, blobs = [], []
    if notes:
        phdrs.append(struct.pack("<IIQQQQQQ", 4, 4, offset, 0, 0, len(notes), 0, 4))
        blobs.append(notes)
        offset += len(notes)
    for vaddr, flags, data, memsz in loads:
        phdrs.append(struct.pack("<IIQQQQQQ", 1, flags, offset, vaddr, 0, len(data), memsz, 0x1000))
        blobs.append(data)
        offset += len(data)
    ident = ident or b"\x7fELF\x02\x01\x01" + b"\0" * 9
    shoff = 64 + 56 * phnum if xnum else 0
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, e_type, machine, 1, 0, 64, shoff, 0, 64, 56,
                         0xFFFF if xnum else phnum, 64, 1 if xnum else 0, 0)
    section0 = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0) if xnum else b""
    return header + b"".join(phdrs) + section0 + b"".join(blobs)


SEG_A = bytes((i * 7 + 3) & 0xFF for i in range(0x2000))
SEG_B = bytes((i * 13 + 1) & 0xFF for i in range(0x1800))
SYNTH_LOADS = [(0x400000, 5, SEG_A, 0x2000), (0x600000, 6, SEG_B, 0x3000)]
SYNTH_NOTES = (nt_prpsinfo(4242)
               + nt_file([(0x400000, 0x401000, 0, "/opt/fake prog"), (0x5FF000, 0x601000, 3, "/lib/libdata.so")]))
SYNTH = elf_core(SYNTH_LOADS, SYNTH_NOTES)


def expected(address, size):
    """The synthetic core's bytes, from the segment contents."""
    for vaddr, _, data, _ in SYNTH_LOADS:
        if vaddr <= address and address + size <= vaddr + len(data):
            return data[address - vaddr:address - vaddr + size]
    raise AssertionError("not inside one segment's data")


@pytest.fixture(scope="module")
def synth_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "core.synthetic"
    path.write_bytes(SYNTH)
    return path


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_synthetic_core_mappings_split_by_nt_file(synth_path):
    with open_source(synth_path) as core:
        assert isinstance(core, CoreFileSource)
        assert (core.arch, core.byte_order, core.ptr_size, core.pid) == ("x86_64", "little", 8, 4242)
        assert core.description == f"core {synth_path}"
        assert core.mappings() == [
            Mapping(0x400000, 0x401000, "r-xp", 0, "/opt/fake prog"),
            Mapping(0x401000, 0x402000, "r-xp"),
            Mapping(0x600000, 0x601000, "rw-p", 0x4000, "/lib/libdata.so"),
            Mapping(0x601000, 0x603000, "rw-p"),
        ]
        assert core.missing() == [(0x601800, 0x603000, "not in the core file")]
        first = core.mappings()[0]
        assert first.readable and first.executable and not first.writable and first.size == 0x1000


def test_synthetic_core_reads_and_refusals(synth_path):
    with open_source(synth_path) as core:
        assert core.read(0x400000, 0x2000) == SEG_A
        assert core.read(0x600ff0, 0x20) == SEG_B[0xFF0:0x1010]
        assert core.read(0x400000, 0) == b""
        with pytest.raises(UnreadableMemoryError) as info:
            core.read(0x6017F8, 16)
        assert (info.value.address, info.value.size) == (0x6017F8, 16)
        assert str(info.value) == (f"core {synth_path}: cannot read 16 bytes at 0x6017f8: "
                                   "0x601800: not in the core file")
        with pytest.raises(UnreadableMemoryError, match="0x402000 is in no segment"):
            core.read(0x401FF0, 0x20)
        with pytest.raises(UnreadableMemoryError, match="0x10 is in no segment"):
            core.read(0x10, 1)


def test_synthetic_core_chunks_skip_what_is_missing(synth_path):
    with open_source(synth_path) as core:
        tail = core.mappings()[3]
        chunks = list(core.iter_chunks(tail, chunk=0x300))
        assert chunks[0][0] == 0x601000 and sum(len(d) for _, d in chunks) == 0x800
        assert b"".join(d for _, d in chunks) == SEG_B[0x1000:]
        assert list(core.iter_chunks(Mapping(0x601800, 0x603000, "rw-p"))) == []


@settings(max_examples=60, deadline=None)
@given(chunk=st.integers(1, 0x2400), start=st.integers(0, 0x1FFF), size=st.integers(0, 0x600))
def test_random_chunks_and_windows_reproduce_the_bytes(synth_path, chunk, start, size):
    with open_source(synth_path) as core:
        for mapping in core.mappings():
            got = list(core.iter_chunks(mapping, chunk=chunk))
            assert all(len(data) <= chunk for _, data in got)
            pos = mapping.start
            for address, data in got:
                assert address == pos
                pos += len(data)
            assert b"".join(data for _, data in got) == expected(mapping.start, pos - mapping.start)
        size = min(size, 0x2000 - start)
        assert core.read(0x400000 + start, size) == SEG_A[start:start + size]


def test_aarch64_and_many_segments_via_pn_xnum(tmp_path):
    loads = [(0x10000, 4, b"\x11" * 0x100, 0x100), (0x20000, 6, b"\x22" * 0x80, 0x1000)]
    with open_source(write(tmp_path, "core.a64", elf_core(loads, machine=183, xnum=True))) as core:
        assert core.arch == "aarch64" and core.pid is None
        assert [(m.start, m.end, m.perms, m.path) for m in core.mappings()] == [
            (0x10000, 0x10100, "r--p", None), (0x20000, 0x21000, "rw-p", None)]
        assert core.read(0x20000, 0x80) == b"\x22" * 0x80


def test_gzip_synthetic_core_reads_the_same(tmp_path):
    path = tmp_path / "core.gz"
    with gzip.open(path, "wb") as f:
        f.write(SYNTH)
    with open_source(path) as core, open_source(write(tmp_path, "core", SYNTH)) as plain:
        assert core.mappings() == plain.mappings() and core.missing() == plain.missing()
        assert core.read(0x600000, 0x1800) == SEG_B and core.pid == 4242
    assert core.closed and sorted(os.listdir(tmp_path)) == ["core", "core.gz"]


def test_cut_gzip_stream_keeps_what_came_out(tmp_path):
    packed = gzip.compress(SYNTH + os.urandom(1 << 16), compresslevel=1)
    with open_source(write(tmp_path, "cut.gz", packed[:len(packed) // 2])) as core:
        assert core.read(0x400000, 0x2000) == SEG_A  # the early segments decompressed whole


def test_damaged_gzip_is_a_core_file_error(tmp_path):
    with pytest.raises(CoreFileError, match="damaged gzip stream"):
        open_source(write(tmp_path, "bad.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 64))


def test_truncated_synthetic_core_reports_missing_not_an_error(tmp_path):
    cut = len(SYNTH) - 0x1000  # inside SEG_B's data
    with open_source(write(tmp_path, "core.cut", SYNTH[:cut])) as core:
        assert core.read(0x400000, 0x2000) == SEG_A
        (low, high, reason), rest = core.missing()[0], core.missing()[1:]
        assert (low, high) == (0x600800, 0x601800) and rest == [(0x601800, 0x603000, "not in the core file")]
        assert reason.startswith("truncated core file: segment 2 at file offset ")
        assert f"needs {0x1800} bytes, file has {cut}" in reason
        with pytest.raises(UnreadableMemoryError, match="truncated core file"):
            core.read(0x6007F0, 0x20)


# --------------------------------------------------------------------------- bad core files

@pytest.mark.parametrize("data, message", [
    (b"", r"not an ELF file \(it is empty\)"),
    (b"#!/bin/sh\necho not a core\n", "not an ELF file"),
    (b"\x7fELF\x01\x01\x01" + b"\0" * 45, "a 32-bit ELF"),
    (b"\x7fELF\x02\x02\x01" + b"\0" * 57, "big-endian"),
    (SYNTH[:40], "truncated: the ELF header needs 64 bytes, file has 40"),
    (elf_core(SYNTH_LOADS, machine=40), r"machine 40 \(ARM\) is not supported"),
    (elf_core(SYNTH_LOADS, machine=999), r"machine 999 \(unknown\) is not supported"),
    (elf_core(SYNTH_LOADS, e_type=2), r"not a core file \(ET_EXEC\)"),
    (elf_core(SYNTH_LOADS, e_type=3), r"not a core file \(ET_DYN\)"),
    (SYNTH[:100], "truncated: program headers at file offset 64 need 168 bytes, file has 100"),
], ids=["empty", "script", "elf32", "big-endian", "short-header", "arm", "unknown-machine", "exec", "dyn",
        "short-phdrs"])
def test_bad_core_files_are_one_line_core_file_errors(tmp_path, data, message):
    path = write(tmp_path, "bad", data)
    with pytest.raises(CoreFileError, match=message) as info:
        open_source(path)
    assert str(info.value).startswith(f"core {path}: ") and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LiveError)


def test_core_paths_that_cannot_be_opened(tmp_path):
    with pytest.raises(CoreFileError, match="no such file"):
        open_source(tmp_path / "absent")
    with pytest.raises(CoreFileError, match="cannot read: Is a directory"):
        open_source(str(tmp_path))
    with pytest.raises(CoreFileError, match="no such file"):
        open_source("./1234")  # digits with a path part are a file, not a pid


# --------------------------------------------------------------------------- this process

def test_this_process_reads_a_bytes_buffer():
    data = bytes(reversed(PATTERN))
    address = id(data) + bytes.__basicsize__ - 1
    with open_source() as me:
        assert isinstance(me, ProcessSource) and me.pid == os.getpid() and me.description == f"this process (pid {os.getpid()})"
        assert me.arch == {"x86_64": "x86_64", "aarch64": "aarch64"}[os.uname().machine]
        mappings = me.mappings()
        assert mappings == sorted(mappings, key=lambda m: m.start)
        paths = {m.path for m in mappings}
        assert PYTHON_BINARY in paths and "[heap]" in paths
        assert me.read(address, len(data)) == data
        home = containing(mappings, address)
        assert home.readable and home.writable
        seen = bytearray()
        for chunk_address, chunk in me.iter_chunks(home, chunk=4096):
            low, high = max(address, chunk_address), min(address + len(data), chunk_address + len(chunk))
            if low < high:
                seen += chunk[low - chunk_address:high - chunk_address]
        assert bytes(seen) == data
        assert me.missing() == []


def test_this_process_unreadable_places_fail_cleanly():
    with open_source() as me:
        with pytest.raises(UnreadableMemoryError, match=r"cannot read 8 bytes at 0x0: 0x0 is not mapped") as info:
            me.read(0, 8)
        assert (info.value.address, info.value.size) == (0, 8) and isinstance(info.value, OSError)
        with pytest.raises(UnreadableMemoryError, match="kernel address space"):
            me.read(0xFFFFFFFFFF600000, 8)
        special = [m for m in me.mappings() if m.path in ("[vvar]", "[vsyscall]")]
        for mapping in special:
            with pytest.raises(UnreadableMemoryError, match=f"mapping 0x{mapping.start:x}-"):
                list(me.iter_chunks(mapping))
        guard = next((m for m in me.mappings() if m.perms[0] == "-"), None)
        if guard is not None:
            with pytest.raises(UnreadableMemoryError, match="the mapping is not readable"):
                me.iter_chunks(guard)


def test_closed_sources_and_argument_checks(synth_path):
    me = open_source()
    me.close()
    me.close()
    assert me.closed and "closed" in repr(me)
    with pytest.raises(ClosedError):
        me.read(0, 1)
    with pytest.raises(ClosedError):
        me.mappings()
    with open_source(synth_path) as core:
        with pytest.raises(ArgumentValueError):
            core.read(-1, 1)
        with pytest.raises(ArgumentValueError):
            core.read(0x400000, -1)
        with pytest.raises(UnreadableMemoryError, match="past the end of the 64-bit address space"):
            core.read((1 << 64) - 1, 2)  # an address from the target, its bytes past the top: unreadable
        with pytest.raises(ArgumentValueError):
            core.read(1 << 64, 1)
        with pytest.raises(ArgumentTypeError):
            core.read(4194304.0, 1)
        with pytest.raises(ArgumentValueError, match="chunk must be positive"):
            core.iter_chunks(core.mappings()[0], chunk=0)
    for bad in (True, 1.5, [1]):
        with pytest.raises(ArgumentTypeError):
            open_source(bad)
    with pytest.raises(ArgumentTypeError):
        CoreFileSource(3)
    for bad in (0, -3):
        with pytest.raises(ArgumentValueError):
            open_source(bad)


# --------------------------------------------------------------------------- /proc/PID/maps and a fake /proc

def test_parse_maps_keeps_odd_pathnames():
    text = (
        "55d0c0a00000-55d0c0a29000 r--p 00000000 fe:00 260104                     /usr/bin/python3.11\n"
        "55d0c1e7f000-55d0c1ec0000 rw-p 00000000 00:00 0                          [heap]\n"
        "7f0000000000-7f0000001000 rw-s 00002000 00:05 77                         /tmp/my file  with spaces\n"
        "7f0000001000-7f0000002000 r-xp 00000000 00:05 78                         /tmp/jit.so (deleted)\n"
        "7f0000002000-7f0000003000 ---p 00000000 00:00 0 \n"
        "7f0000003000-7f0000004000 rw-p 00000000 00:00 0\n"
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
    )
    maps = parse_maps(text.encode())
    assert [m.path for m in maps] == ["/usr/bin/python3.11", "[heap]", "/tmp/my file  with spaces",
                                      "/tmp/jit.so (deleted)", None, None, "[vsyscall]"]
    assert maps[2] == Mapping(0x7F0000000000, 0x7F0000001000, "rw-s", 0x2000, "/tmp/my file  with spaces")
    assert not maps[4].readable and maps[6].start == 0xFFFFFFFFFF600000
    assert parse_maps(b"7f-80 r--p 0 0:0 0 /caf\xe9")[0].path == os.fsdecode(b"/caf\xe9")
    with pytest.raises(LiveError, match="unexpected line in a maps file"):
        parse_maps("garbage\n")


def fake_proc(tmp_path, pid, state="S", memory=()):
    """/proc/PID with maps, stat, exe and a sparse `mem` file holding `memory` [(address, bytes)]."""
    root = tmp_path / "proc"
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "maps").write_text("".join(
        f"{a:x}-{a + 0x1000:x} rw-p 00000000 00:00 0                          [anon: fake]\n" for a, _ in memory))
    (root / str(pid) / "stat").write_text(f"{pid} (odd) name) {state} 1 1 1\n")
    with open(PYTHON_BINARY, "rb") as f:
        (root / str(pid) / "exe").write_bytes(f.read(64))  # the ELF header is all the arch check reads
    with open(root / str(pid) / "mem", "wb") as f:
        for address, data in memory:
            f.seek(address)
            f.write(data)
    return root


def test_fake_proc_reads_and_reports(tmp_path):
    root = fake_proc(tmp_path, 777, memory=[(0x10000, b"hello")])
    with ProcessSource(777, proc=root) as fake:
        assert fake.description == "pid 777" and fake.arch in ("x86_64", "aarch64")
        assert fake.mappings()[0].path == "[anon: fake]"
        assert fake.read(0x10000, 5) == b"hello"
        with pytest.raises(UnreadableMemoryError, match="no memory at 0x10005"):
            fake.read(0x10000, 6)  # past the file's end: pread returns nothing while the "process" runs
    with pytest.raises(NoSuchProcessError, match="^no such process: pid 778$"):
        ProcessSource(778, proc=root)


def test_fake_proc_zombie_is_gone(tmp_path):
    root = fake_proc(tmp_path, 779, state="Z", memory=[(0x10000, b"x")])
    with ProcessSource(779, proc=root) as fake:
        with pytest.raises(ProcessGoneError, match="pid 779 has exited .a zombie"):
            fake.read(0x20000, 1)


def test_access_denied_names_pid_and_ptrace_scope(tmp_path, monkeypatch):
    root = fake_proc(tmp_path, 780)
    real_open = os.open

    def refusing_open(path, flags, mode=0o777, *, dir_fd=None):
        if path == "mem":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(process.os, "open", refusing_open)
    with pytest.raises(AccessDeniedError) as info:
        ProcessSource(780, proc=root)
    message = str(info.value)
    assert message.startswith("cannot read the memory of pid 780: Permission denied")
    assert "/proc/sys/kernel/yama/ptrace_scope" in message and "same user" in message and "\n" not in message
    assert isinstance(info.value, PermissionError)


def test_pid_1_is_denied_unless_privileged():
    try:
        os.close(os.open("/proc/1/mem", os.O_RDONLY))
    except PermissionError:
        with pytest.raises(AccessDeniedError, match="pid 1.*ptrace_scope"):
            open_source(1)
    else:
        pytest.skip("/proc/1/mem is readable here (root or CAP_SYS_PTRACE); the fake-/proc test covers refusal")


def test_missing_pid():
    with pytest.raises(NoSuchProcessError, match=f"^no such process: pid {NO_SUCH_PID}$") as info:
        open_source(NO_SUCH_PID)
    assert isinstance(info.value, ProcessLookupError) and isinstance(info.value, VMCtxEmuError)
    with pytest.raises(NoSuchProcessError):
        open_source(str(NO_SUCH_PID))


# --------------------------------------------------------------------------- a child process and its core

@pytest.fixture(scope="module")
def child():
    proc, address = spawn_child()
    yield proc, address
    stop(proc)


def test_child_by_pid(child):
    proc, address = child
    with open_source(str(proc.pid)) as target:
        assert target.pid == proc.pid and target.description == f"pid {proc.pid}"
        assert target.read(address, len(PATTERN)) == PATTERN
        assert PYTHON_BINARY in {m.path for m in target.mappings()}


def test_child_killed_is_gone_then_unknown():
    proc, address = spawn_child()
    target = open_source(proc.pid)
    assert target.read(address, len(PATTERN)) == PATTERN
    proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while state_of(proc.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ProcessGoneError, match=f"pid {proc.pid} has exited .a zombie"):
        target.read(address, len(PATTERN))
    with pytest.raises(ProcessGoneError):
        target.mappings()
    proc.wait()
    proc.stdout.close()
    with pytest.raises(ProcessGoneError, match=f"^pid {proc.pid} has exited;"):
        target.read(address, 1)
    target.close()
    with pytest.raises(NoSuchProcessError):
        open_source(proc.pid)


@pytest.fixture(scope="module")
def gcore_file(child, tmp_path_factory):
    exe = shutil.which("gcore")
    if exe is None:
        pytest.skip("gcore is not installed (make test installs the Debian package gdb)")
    proc, address = child
    prefix = tmp_path_factory.mktemp("gcore") / "core"
    try:
        run = subprocess.run([exe, "-o", str(prefix), str(proc.pid)], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip("gcore did not finish in 120 s")
    path = pathlib.Path(f"{prefix}.{proc.pid}")
    if run.returncode != 0 or not path.exists():
        pytest.skip(f"gcore cannot dump a process here (ptrace not permitted?): {(run.stderr or run.stdout)[-300:]}")
    return path


def test_gcore_reads_like_the_live_process(child, gcore_file):
    proc, address = child
    with open_source(gcore_file) as core:
        assert core.arch == {"x86_64": "x86_64", "aarch64": "aarch64"}[os.uname().machine]
        assert core.pid == proc.pid
        assert core.read(address, len(PATTERN)) == PATTERN
        mappings = core.mappings()
        assert mappings == sorted(mappings, key=lambda m: m.start)
        assert PYTHON_BINARY in {m.path for m in mappings}
        assert containing(mappings, address).writable
        home = containing(mappings, address)
        data = b"".join(chunk for _, chunk in core.iter_chunks(home, chunk=1000))
        assert PATTERN in data


def test_gzip_of_gcore_reads_the_same(child, gcore_file, tmp_path):
    _, address = child
    packed = tmp_path / "core.gz"
    with open(gcore_file, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    with open_source(packed) as core, open_source(gcore_file) as plain:
        assert core.mappings() == plain.mappings() and core.pid == plain.pid
        assert core.read(address, len(PATTERN)) == PATTERN
        assert core.damage() == plain.damage()  # gcore's section headers end the file: nothing past what is used


def test_gcore_cut_in_half_keeps_the_early_segments(gcore_file, tmp_path):
    half = tmp_path / "core.half"
    size = gcore_file.stat().st_size
    with open(gcore_file, "rb") as src, open(half, "wb") as dst:
        dst.write(src.read(size // 2))
    with open_source(gcore_file) as full, open_source(half) as cut:
        lost = cut.missing()
        assert lost and all(reason.startswith("truncated core file: segment ") for *_, reason in lost
                            if reason != "not in the core file")
        assert any(reason.startswith("truncated core file") for *_, reason in lost)
        whole = same = 0
        for m in full.mappings():
            if m.readable and not any(low < m.end and m.start < high for low, high, _ in lost):
                whole += 1
                same += cut.read(m.start, m.size) == full.read(m.start, m.size)
        assert whole and same == whole
        low = next(low for low, _, reason in lost if reason.startswith("truncated"))
        with pytest.raises(UnreadableMemoryError, match="truncated core file"):
            cut.read(low, 1)
