"""Shared test helpers."""

import importlib.util

import pytest
from cffi import FFI

from cores import delete_made


@pytest.fixture(scope="session", autouse=True)
def _delete_made_cores():
    """The disk is shared: every core the suite wrote is deleted at its end (pytest keeps old temp dirs)."""
    yield
    delete_made()


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


def run_cli(argv, capsys, out=None):
    """(exit status, stdout, stderr) of `vmctx-emu ARGV` run in-process; argparse's SystemExit is a status."""
    from vmctx_emu.cli import main

    try:
        status = main([str(a) for a in argv], out=out)
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err
