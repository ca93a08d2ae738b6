"""Shared test helpers."""

import importlib.util
import os
import shutil
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


def gcore(pid, directory, name="core", timeout=300):
    """The path of a core of live process `pid` written by gdb's gcore into `directory`; skips the test if
    gcore is missing or cannot dump here (ptrace not permitted)."""
    exe = shutil.which("gcore")
    if exe is None:
        pytest.skip("gcore (from gdb) is not installed; make test installs it")
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
