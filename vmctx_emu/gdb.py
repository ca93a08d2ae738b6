"""`python -m vmctx_emu.gdb` prints the path of a gdb command file for this interpreter.

In gdb: `source PATH`, then `vmctx ADDRESS [layout options]`. The file names
this interpreter, since gdb's own Python cannot import the package.

`python -m vmctx_emu.gdb --target-args [layout options]` prints the command line of
`native/gdb_target.c` (a small C program that builds a context with the C
initializer and stops in `vmctx_ready()`) for that shape, so the README's gdb
walk-through needs no offsets computed by hand.
"""

import hashlib
import os
import sys
import tempfile
from importlib import resources

from .constants import VMCOMPONENT_MAGIC

__all__ = ["command_file", "script_path", "write_script", "target_args", "main"]


def command_file(part):
    """The text of a debugger's command file: the shared part (`debugger_script.py`), then the debugger's
    own `part`, naming this interpreter."""
    package = resources.files("vmctx_emu")
    template = package.joinpath("debugger_script.py").read_text() + "\n\n" + package.joinpath(part).read_text()
    return (template.replace('"@PYTHON@"', repr(sys.executable))
            .replace("@VMCOMPONENT_MAGIC@", str(VMCOMPONENT_MAGIC)))


def script_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    return os.path.join(cache, "vmctx-emu", f"vmctx-gdb-{tag}.py")


def write_script(path=None, part="gdb_script.py"):
    """Write the gdb command file (or with `part` another debugger's) atomically and return its path."""
    path = path or script_path()
    text = command_file(part)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


# The store pointers the target's context gets (any non-null values do).
TARGET_STORE = (0x1000, 0x2000)


def target_args(offsets, clear_may_enter=None):
    """`gdb_target`'s argv for `offsets` (host pointer size): `[--clear-may-enter OFFSET] SIZE PTR_SIZE FILL...`."""
    from .memory.native import c_initializer_argv

    head = [] if clear_may_enter is None else ["--clear-may-enter", str(offsets.instance_flags(clear_may_enter))]
    return head + c_initializer_argv(offsets, TARGET_STORE)


def main(argv=None):
    """Print the script path, or with `--target-args` the gdb target's arguments for a shape."""
    import shlex

    from .cli import Parser, add_layout_options

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="python -m vmctx_emu.gdb",
                     description="Print the path of the gdb command file (`source` it in gdb).")
    parser.add_argument("--target-args", action="store_true",
                        help="instead, print the arguments of native/gdb_target.c for the shape the "
                             "count options give (seed layout, this host's pointers)")
    parser.add_argument("--clear-may-enter", type=int, default=None, metavar="I",
                        help="with --target-args: the target clears MAY_ENTER in flags[I]")
    add_layout_options(parser)
    args = parser.parse_args(argv)
    if not args.target_args:
        print(write_script())
        return 0
    from .errors import VMCtxEmuError

    from .layouts.ptr import HostPtr
    from .layouts.releases import SEED, resolve_wasmtime

    try:
        if args.wasmtime is not None and resolve_wasmtime(args.wasmtime).layout is not SEED:
            raise VMCtxEmuError(f"--wasmtime {args.wasmtime}: the target builds seed-layout contexts only")
        offsets = SEED.offsets(args.ptr_size, **{name: getattr(args, name) for name in SEED.count_names})
        if int(offsets.ptr) != int(HostPtr):
            raise VMCtxEmuError(f"the target is built for this host: --ptr-size is {int(HostPtr)}")
        print(shlex.join(target_args(offsets, args.clear_may_enter)))
    except VMCtxEmuError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
