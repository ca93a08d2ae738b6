"""`python -m vmctx_emu.gdb` prints the path of a gdb command file for this interpreter.

In gdb: `source PATH`, then `vmctx ADDRESS [layout options]`. The file names
this interpreter, since gdb's own Python cannot import the package.
"""

import hashlib
import os
import sys
import tempfile
from importlib import resources

from .constants import VMCOMPONENT_MAGIC

__all__ = ["script_path", "write_script"]


def script_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    return os.path.join(cache, "vmctx-emu", f"vmctx-gdb-{tag}.py")


def write_script(path=None):
    """Write the gdb command file (atomically) and return its path."""
    path = path or script_path()
    template = resources.files("vmctx_emu").joinpath("gdb_script.py").read_text()
    text = (template.replace('"@PYTHON@"', repr(sys.executable))
            .replace("@VMCOMPONENT_MAGIC@", str(VMCOMPONENT_MAGIC)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    print(write_script())
