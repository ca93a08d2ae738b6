"""`python -m vmctx_emu.lldb` prints the path of an lldb command file for this interpreter.

In lldb: `command script import PATH`, then `vmctx ADDRESS`, `vmctx scan`, `vmctx where EXPRESSION...`,
as in gdb (`vmctx_emu.gdb`). lldb's embedded Python (Debian's python3-lldb) does not see the package's
environment, so the file names this interpreter and runs the package's CLI with it, as gdb's does.
The file's name is a Python module name: lldb imports it as one.
"""

import hashlib
import os
import sys

from .gdb import write_script

__all__ = ["script_path", "main"]


def script_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    return os.path.join(cache, "vmctx-emu", f"vmctx_lldb_{tag}.py")


def main(argv=None):
    """Write the command file and print its path."""
    from .cli import Parser

    parser = Parser(prog="python -m vmctx_emu.lldb",
                    description="Print the path of the lldb command file (`command script import` it in lldb).")
    parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    print(write_script(script_path(), part="lldb_script.py"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
