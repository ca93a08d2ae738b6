"""Shared test helpers."""

import importlib.util
import os
import shutil
import struct
import subprocess

import pytest
from cffi import FFI


def compile_c(module_name, source, cdefs, tmpdir):
    """Compile `source` through cffi into `tmpdir` and return its `lib`."""
    ffi = FFI()
    for cdef in cdefs:
        ffi.cdef(cdef)
    ffi.set_source(module_name, source)
    path = ffi.compile(tmpdir=str(tmpdir))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lib


# gcore writes every readable mapping: a core may not be larger than this, nor than a quarter of the free disk.
CORE_LIMIT = 2 << 30


def expected_core_size(pid):
    """About what gcore writes for `pid`: the bytes of its readable mappings."""
    total = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1].startswith("r"):
                low, high = (int(x, 16) for x in fields[0].split("-"))
                total += high - low
    return total


def gcore(pid, directory, name="core", timeout=300):
    """The path of a core of live process `pid` written by gdb's gcore into `directory`; skips the test if
    gcore is missing, cannot dump here (ptrace not permitted), or the core would not fit the disk."""
    exe = shutil.which("gcore")
    if exe is None:
        pytest.skip("gcore (from gdb) is not installed; make test installs it")
    size, free = expected_core_size(pid), shutil.disk_usage(directory).free
    if size > min(CORE_LIMIT, free // 4):
        pytest.skip(f"a core of pid {pid} would be about {size >> 20} MiB ({free >> 20} MiB free): not written")
    prefix = os.path.join(directory, name)
    try:
        done = subprocess.run([exe, "-o", prefix, str(pid)], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip(f"gcore did not finish in {timeout} s")
    path = f"{prefix}.{pid}"
    if done.returncode or not os.path.exists(path):
        pytest.skip(f"gcore cannot dump pid {pid} here: {(done.stderr or done.stdout).strip()[-300:]}")
    return path


def run_cli(argv, capsys, out=None):
    """(exit status, stdout, stderr) of `vmctx-emu ARGV` run in-process; argparse's SystemExit is a status."""
    from vmctx_emu.cli import main

    try:
        status = main([str(a) for a in argv], out=out)
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


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


def rewrite_core(src, dst, *, drop_notes=(), drop_file_backed=False):
    """A copy of core `src` at `dst` without the notes of types `drop_notes` and, with `drop_file_backed`, with
    no bytes for the segments NT_FILE says are file-backed (p_filesz 0, as a kernel writes segments it does not
    dump). The file's other bytes stay where they were."""
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
            elif p[0] == 1 and drop_file_backed and any(lo < p[3] + p[6] and p[3] < hi for lo, hi in file_ranges):
                p[5] = 0
        for i, p in enumerate(phdrs):
            _PHDR.pack_into(table, i * _PHDR.size, *p)
        f.seek(phoff)
        f.write(table)
    return dst
