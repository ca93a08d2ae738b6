"""Cores for the tests: written by gcore only when small, rewritten as other tools write them, deleted after."""

import os
import shutil
import struct
import subprocess

import pytest

# gcore writes every mapping, PROT_NONE reservations included (as zeros): a core may not be larger than this,
# nor than a quarter of the free disk. Test processes keep their linear memories' reservations small
# (SMALL_MEMORIES) so their cores stay far below it.
CORE_LIMIT = 1 << 30
# What a child's wasmtime-py Engine is configured with: 16 MiB reservations, 64 KiB guards (the default
# reserves 4 GiB and more per linear memory, which gcore writes out whole).
SMALL_MEMORIES = """
def small_engine(wasmtime):
    config = wasmtime.Config()
    config.memory_reservation = 16 << 20
    config.memory_guard_size = 64 << 10
    config.memory_reservation_for_growth = 0
    return wasmtime.Engine(config)
"""
_MADE = []  # cores (and copies of them) this session wrote: deleted when it ends


def expected_core_size(pid):
    """About what gcore writes for `pid`: the bytes of all its mappings."""
    total = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            total += high - low
    return total


def made(path):
    """`path`, a core or a copy of one a test wrote: deleted when the session ends."""
    _MADE.append(os.fspath(path))
    return path


def delete_made():
    """Delete every core (and copy of one) written so far."""
    while _MADE:
        try:
            os.unlink(_MADE.pop())
        except OSError:
            pass


def check_core_size(pid, directory):
    """None if a core of `pid` may be written into `directory`, else why not (it would be too large)."""
    size, free = expected_core_size(pid), shutil.disk_usage(directory).free
    if size > min(CORE_LIMIT, free // 4):
        return f"a core of pid {pid} would be about {size >> 20} MiB ({free >> 20} MiB free): not written"
    return None


def gcore(pid, directory, name="core", timeout=300):
    """The path of a core of live process `pid` written by gdb's gcore into `directory`; skips the test if
    gcore is missing, cannot dump here (ptrace not permitted), or the core would not fit the disk."""
    exe = shutil.which("gcore")
    if exe is None:
        pytest.skip("gcore (from gdb) is not installed; make test installs it")
    too_large = check_core_size(pid, directory)
    if too_large:
        pytest.skip(too_large)
    prefix = os.path.join(directory, name)
    try:
        done = subprocess.run([exe, "-o", prefix, str(pid)], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip(f"gcore did not finish in {timeout} s")
    path = made(f"{prefix}.{pid}")
    if done.returncode or not os.path.exists(path):
        pytest.skip(f"gcore cannot dump pid {pid} here: {(done.stderr or done.stdout).strip()[-300:]}")
    return path


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
NT_FILE = 0x46494C45


def _core_notes(data):
    """(name, type, desc) of each note in a PT_NOTE's bytes (4-byte aligned, as Linux writes them)."""
    pos, out = 0, []
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + (namesz + 3) // 4 * 4
        out.append((data[pos + 12:pos + 12 + namesz], ntype, data[desc:desc + descsz]))
        pos = desc + (descsz + 3) // 4 * 4
    return out


def rewrite_core(src, dst, *, drop_notes=(), drop_file_backed=False, drop_at=(), start_at=None, split_at=None):
    """A copy of core `src` at `dst` without the notes of types `drop_notes` and, with `drop_file_backed`, with
    no bytes for the segments NT_FILE says are file-backed (p_filesz 0, as a kernel writes segments it does not
    dump; "entirely": no program header for them either, as some crash handlers write); `drop_at`: no bytes for
    the segments that start at these addresses either; `start_at` {address: later address}: that segment
    begins later (its first bytes are in no segment); `split_at` {address: inner address}: that segment is two,
    the second beginning at the inner address (the program headers then move to the end of the file). The
    file's other bytes stay where they were."""
    made(dst)
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        header = _EHDR.unpack(f.read(_EHDR.size))
        phoff, phnum = header[5], header[10]
        f.seek(phoff)
        table = bytearray(f.read(phnum * _PHDR.size))
        phdrs = [list(_PHDR.unpack_from(table, i * _PHDR.size)) for i in range(phnum)]
        file_ranges = []
        for p in phdrs:
            if p[0] == 4:  # PT_NOTE
                f.seek(p[2])
                for name, ntype, desc in _core_notes(f.read(p[5])):
                    if ntype == NT_FILE and name.rstrip(b"\0") == b"CORE":
                        count, _ = struct.unpack_from("<QQ", desc)
                        file_ranges += [struct.unpack_from("<QQ", desc, 16 + 24 * i) for i in range(count)]
        for p in phdrs:
            if p[0] == 4:
                f.seek(p[2])
                kept = b"".join(struct.pack("<III", len(name), len(desc), ntype) + name.ljust((len(name) + 3) // 4 * 4, b"\0")
                                + desc.ljust((len(desc) + 3) // 4 * 4, b"\0")
                                for name, ntype, desc in _core_notes(f.read(p[5])) if ntype not in drop_notes)
                f.seek(p[2])
                f.write(kept)
                p[5] = len(kept)
            elif p[0] == 1 and p[3] in drop_at:
                p[5] = 0
            elif p[0] == 1 and p[3] in (start_at or {}):
                cut = start_at[p[3]] - p[3]
                p[2:7] = p[2] + cut, p[3] + cut, p[4] + cut, p[5] - cut, p[6] - cut
            elif p[0] == 1 and drop_file_backed and any(lo < p[3] + p[6] and p[3] < hi for lo, hi in file_ranges):
                p[5] = 0
                if drop_file_backed == "entirely":
                    p[0] = 0  # PT_NULL
        for p in list(phdrs):
            if p[0] == 1 and p[3] in (split_at or {}):
                cut = split_at[p[3]] - p[3]
                assert 0 < cut < min(p[5], p[6]), (hex(p[3]), cut)
                phdrs.append(p[:2] + [p[2] + cut, p[3] + cut, p[4] + cut, p[5] - cut, p[6] - cut, p[7]])
                p[5], p[6] = cut, cut
        if split_at:
            phdrs.sort(key=lambda p: (p[0] != 4, p[3]))  # notes first, then segments by address, as a kernel writes
        table = bytearray(len(phdrs) * _PHDR.size)
        for i, p in enumerate(phdrs):
            _PHDR.pack_into(table, i * _PHDR.size, *p)
        if len(phdrs) != phnum:
            phoff = -(-f.seek(0, 2) // 8) * 8
            f.seek(0)
            f.write(_EHDR.pack(*header[:5], phoff, *header[6:10], len(phdrs), *header[11:]))
        f.seek(phoff)
        f.write(table)
    return dst
