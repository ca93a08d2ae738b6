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
# Options that are not counts: without any count the shape is unknown.
NOT_COUNTS = ("--wasmtime", "--ptr-size", "--byte-order", "--address", "--json", "--force")


def _run(args, rename=None):
    """Run vmctx-emu; its error becomes a gdb error, with our temp file named as what it holds."""
    proc = subprocess.run([PYTHON, "-m", "vmctx_emu", *args], capture_output=True, text=True)
    if proc.returncode:
        message = proc.stderr.strip() or f"vmctx-emu exited with {proc.returncode}"
        for old, new in (rename or {}).items():
            message = message.replace(old, new)
        raise gdb.GdbError(message)
    return proc.stdout


def _has_counts(options):
    """Whether any option besides the release, pointer size and output flags is given."""
    words = iter(options)
    for word in words:
        name = word.split("=", 1)[0]
        if name in ("--wasmtime", "--ptr-size", "--byte-order", "--address"):
            if "=" not in word:
                next(words, None)
        elif name.startswith("--") and name not in NOT_COUNTS:
            return True
    return False


def _read(inferior, address, size, what):
    """`size` bytes at `address`; the last byte is probed first, so a huge wrong size fails at once."""
    try:
        inferior.read_memory(address + size - 1, 1)
        return bytes(inferior.read_memory(address, size))
    except (gdb.MemoryError, MemoryError, OverflowError, ValueError) as e:
        raise gdb.GdbError(f"vmctx: cannot read {what} ({size} bytes at {address:#x}..{address + size:#x}): "
                           f"{e or type(e).__name__}") from None


# Options of `decode` with a value that `layout` does not take.
DECODE_ONLY_VALUED = ("--byte-order", "--address")


def _layout_args(argv):
    """`argv` without what only `decode` takes (`--json`, `--byte-order big`, ...)."""
    kept, words = [], iter(argv)
    for word in words:
        name = word.split("=", 1)[0]
        if name in DECODE_ONLY_VALUED:
            if "=" not in word:
                next(words, None)
        elif word not in DECODE_ONLY_FLAGS:
            kept.append(word)
    return kept


class VmctxCommand(gdb.Command):
    """Decode the VMComponentContext at ADDRESS.

Usage: vmctx ADDRESS [--wasmtime VERSION] [--ptr-size N] count options [--json] [--force]
At least one count option is needed (absent ones are 0). They are those of the
release (`vmctx-emu versions` lists them; seed: --lowerings --memories
--reallocs --post-returns --instances --always-trap).
ADDRESS is any gdb expression (everything before the first option). The pointer size and byte order default to the
inferior's. The magic at offset 0 is checked before anything else is read."""

    def __init__(self):
        super().__init__("vmctx", gdb.COMMAND_DATA, prefix=True)

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
        if "--help" in options or "-h" in options:
            gdb.write(self.__doc__ + "\n")
            return
        if not _has_counts(options):
            raise gdb.GdbError("vmctx: give the component's counts after the address, e.g. "
                               "`vmctx ctx --lowerings 3 --instances 2` (absent counts are 0; "
                               "`vmctx-emu versions` lists each release's count options)")
        if "--ptr-size" not in options:
            options += ["--ptr-size", str(gdb.lookup_type("void").pointer().sizeof)]
        byte_order = "big" if "big endian" in gdb.execute("show endian", to_string=True) else "little"
        inferior = gdb.selected_inferior()
        magic = _read(inferior, address, 4, "the magic")
        if int.from_bytes(magic, byte_order) != VMCOMPONENT_MAGIC:
            raise gdb.GdbError(
                f"vmctx: no VMComponentContext at {address:#x}: found bytes {magic.hex(' ')} "
                f"({magic!r}), expected the magic b'comp'"
            )
        size = json.loads(_run(["layout", "--json", *_layout_args(options)]))["size_of_vmctx"]
        data = _read(inferior, address, size, "the context of this layout (are the counts right?)")
        fd, path = tempfile.mkstemp(prefix="vmctx-gdb-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            gdb.write(_run(["decode", path, "--byte-order", byte_order, "--address", hex(address), *options],
                           rename={path: f"the {size} bytes at {address:#x}"}))
        finally:
            os.unlink(path)


# How `info target` names a core file: "Local core dump file:\n\t`PATH', file type ...".
CORE_FILE_LINE = "Local core dump file:"
SCAN_OPTIONS = {"--wasmtime": 1, "--json": 0, "--records": 0, "--all": 0, "--exe": 1, "--sysroot": 1}
SCAN_USAGE = "vmctx scan [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--records | --json]"


def _inferior_source():
    """The scan arguments naming this inferior: its core file, or its pid when gdb runs it natively."""
    target = gdb.execute("info target", to_string=True)
    if CORE_FILE_LINE in target:
        line = target.split(CORE_FILE_LINE, 1)[1].lstrip().splitlines()[0]
        return ["--core", line[line.index("`") + 1 : line.rindex("'")]]
    inferior = gdb.selected_inferior()
    connection = getattr(inferior, "connection", None)
    kind = getattr(connection, "type", "native") if connection is not None else None
    if inferior.pid and kind == "native":
        return ["--pid", str(inferior.pid)]
    if not inferior.pid:
        raise gdb.GdbError("vmctx scan: no process and no core file: run or attach to a Wasmtime process, "
                           "or load its core with `core FILE`")
    raise gdb.GdbError(f"vmctx scan: the inferior is on a {kind} target; scan reads a local process or a core file "
                       "(make one with `gcore FILE`, then run `vmctx-emu scan --core FILE`)")


class VmctxScanCommand(gdb.Command):
    """Find, identify and decode every component context of the inferior (live or core).

Usage: vmctx scan [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--records | --json]
Runs vmctx-emu's scan on this inferior: a live local process is read through
/proc/PID/mem (never written), a core file loaded with `core FILE` from that
file. The release is read from the mapped Wasmtime unless --wasmtime gives it;
--all also lists freed contexts; --exe and --sysroot supply files a core does
not name (checked against it), as `file` and `set sysroot` do for gdb. Each
context is summarized (release, shape, each instance's flags in words);
--records prints every field, --json both."""

    def __init__(self):
        super().__init__("vmctx scan", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        options = gdb.string_to_argv(arg)
        i = 0
        while i < len(options):
            takes = SCAN_OPTIONS.get(options[i])
            if takes is None or i + takes >= len(options):
                what = "unexpected" if takes is None else "a value is needed after"
                raise gdb.GdbError(f"vmctx scan: {what} {options[i]!r}; usage: {SCAN_USAGE}")
            i += 1 + takes
        gdb.write(_run(["scan", *_inferior_source(), *options]))


WHERE_OPTIONS = {"--wasmtime": 1, "--json": 0, "--all": 0, "--exe": 1, "--sysroot": 1}
WHERE_USAGE = "vmctx where EXPRESSION... [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--json]"


class VmctxWhereCommand(gdb.Command):
    """Which context, field, trampoline or JIT region an address belongs to.

Usage: vmctx where EXPRESSION... [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--json]
Each EXPRESSION ($pc, a register, a pointer) is evaluated by gdb and located
among the contexts vmctx-emu's scan finds in this inferior (live or core): the
mapping and symbol holding it, the context it is inside, the context fields
holding it, and for code the nearest entry point a context knows (JIT frames
that `bt` shows as ??)."""

    def __init__(self):
        super().__init__("vmctx where", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        words = gdb.string_to_argv(arg)
        options, addresses, i = [], [], 0
        while i < len(words):
            takes = WHERE_OPTIONS.get(words[i])
            if takes is None and words[i].startswith("--"):
                raise gdb.GdbError(f"vmctx where: unexpected {words[i]!r}; usage: {WHERE_USAGE}")
            if takes is None:
                value = gdb.parse_and_eval(words[i]).cast(gdb.lookup_type("unsigned long"))
                addresses.append(f"{int(value) & 0xFFFF_FFFF_FFFF_FFFF:#x}")
                i += 1
                continue
            if i + takes >= len(words):
                raise gdb.GdbError(f"vmctx where: a value is needed after {words[i]!r}; usage: {WHERE_USAGE}")
            options += words[i : i + 1 + takes]
            i += 1 + takes
        if not addresses:
            raise gdb.GdbError(f"vmctx where: no address given; usage: {WHERE_USAGE}")
        gdb.write(_run(["where", *addresses, *_inferior_source(), *options]))


VmctxCommand()
VmctxScanCommand()
VmctxWhereCommand()
