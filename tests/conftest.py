"""Shared test helpers."""

import importlib.util

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
