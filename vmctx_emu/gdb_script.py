# Sourced by gdb (`source PATH`); written out by `python -m vmctx_emu.gdb`.
# gdb's embedded Python does not see the package's environment, so this side
# uses only the standard library: it reads the inferior's memory, checks the
# magic, and hands the bytes to the package's own interpreter to decode.
import json
import os
import subprocess
import tempfile

import gdb

PYTHON = "@PYTHON@"
VMCOMPONENT_MAGIC = int("@VMCOMPONENT_MAGIC@")
# Options that only `decode` takes; everything else (--wasmtime, --ptr-size, the
# counts of the chosen release) is passed to `layout` as well.
DECODE_ONLY_FLAGS = ("--json", "--force")


def _run(args):
    proc = subprocess.run([PYTHON, "-m", "vmctx_emu", *args], capture_output=True, text=True)
    if proc.returncode:
        raise gdb.GdbError(proc.stderr.strip() or f"vmctx-emu exited with {proc.returncode}")
    return proc.stdout


def _layout_args(argv):
    return [word for word in argv if word not in DECODE_ONLY_FLAGS]


class VmctxCommand(gdb.Command):
    """Decode the VMComponentContext at ADDRESS.

Usage: vmctx ADDRESS [--wasmtime VERSION] [--ptr-size N] [count options] [--json]
The count options are those of the release (`vmctx-emu versions` lists them;
seed: --lowerings --memories --reallocs --post-returns --instances --always-trap).
ADDRESS is any gdb expression (everything before the first option). The pointer size and byte order default to the
inferior's. The magic at offset 0 is checked before anything else is read."""

    def __init__(self):
        super().__init__("vmctx", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        # The address expression is everything before the first option, so
        # `vmctx (char *)ctx + 16 --lowerings 3` needs no quoting.
        expression, dashes, rest = arg.partition(" --")
        if expression.strip().startswith("--"):
            expression, dashes, rest = "", "--", expression.strip()[2:]
        if not expression.strip():
            raise gdb.GdbError("usage: vmctx ADDRESS [layout options]; see 'help vmctx'")
        address = int(gdb.parse_and_eval(expression).cast(gdb.lookup_type("unsigned long")))
        options = gdb.string_to_argv(dashes + rest) if dashes else []
        if "--ptr-size" not in options:
            options += ["--ptr-size", str(gdb.lookup_type("void").pointer().sizeof)]
        byte_order = "big" if "big endian" in gdb.execute("show endian", to_string=True) else "little"
        inferior = gdb.selected_inferior()
        try:
            magic = bytes(inferior.read_memory(address, 4))
        except gdb.MemoryError as e:
            raise gdb.GdbError(f"vmctx: cannot read {address:#x}: {e}") from None
        if int.from_bytes(magic, byte_order) != VMCOMPONENT_MAGIC:
            raise gdb.GdbError(
                f"vmctx: no VMComponentContext at {address:#x}: found bytes {magic.hex(' ')} "
                f"({magic!r}), expected the magic b'comp'"
            )
        size = json.loads(_run(["layout", "--json", *_layout_args(options)]))["size_of_vmctx"]
        data = bytes(inferior.read_memory(address, size))
        fd, path = tempfile.mkstemp(prefix="vmctx-gdb-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            gdb.write(_run(["decode", path, "--byte-order", byte_order, "--address", hex(address), *options]))
        finally:
            os.unlink(path)


VmctxCommand()
