"""cffi builder for `vmctx_emu._native`, run by setuptools at install time (`cffi_modules`)."""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def _cdef_from_header(text):
    """The header minus preprocessor lines is exactly the cdef cffi needs."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


# The context's stand-ins for compiled code, the heap reader's chunk walker and the scanner's magic search:
# one module, a unit per concern.
UNITS = ("vmctx_native", "heap_chain", "magic_scan")

ffibuilder = FFI()
ffibuilder.cdef("\n".join(_cdef_from_header(_read(f"{unit}.h")) for unit in UNITS))
ffibuilder.set_source(
    "vmctx_emu._native",
    "\n".join(f'#include "{unit}.h"' for unit in UNITS),
    sources=[os.path.relpath(os.path.join(HERE, f"{unit}.c")) for unit in UNITS],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
