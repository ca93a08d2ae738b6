# gdb's part of the command file (`source PATH`), after debugger_script.py's shared part; both
# written out by `python -m vmctx_emu.gdb`. The shared part does the work; this reads the
# inferior's memory, evaluates expressions and names the target the gdb way.
import gdb

# How `info target` names a core file: "Local core dump file:\n\t`PATH', file type ...".
CORE_FILE_LINE = "Local core dump file:"


class GdbInferior(Inferior):
    def __init__(self):
        self.inferior = gdb.selected_inferior()
        self.pointer_size = gdb.lookup_type("void").pointer().sizeof
        self.byte_order = "big" if "big endian" in gdb.execute("show endian", to_string=True) else "little"

    def split(self, arg):
        return gdb.string_to_argv(arg)

    def evaluate(self, expression):
        value = gdb.parse_and_eval(expression).cast(gdb.lookup_type("unsigned long"))
        return int(value) & ((1 << (8 * self.pointer_size)) - 1)

    def read(self, address, size):
        try:
            return self.inferior.read_memory(address, size)
        except gdb.MemoryError as e:
            raise ReadError(str(e)) from None

    def target(self):
        """The scan arguments naming this inferior: its core file, or its pid when gdb runs it natively."""
        info = gdb.execute("info target", to_string=True)
        if CORE_FILE_LINE in info:
            line = info.split(CORE_FILE_LINE, 1)[1].lstrip().splitlines()[0]
            return ["--core", line[line.index("`") + 1 : line.rindex("'")]]
        connection = getattr(self.inferior, "connection", None)
        kind = getattr(connection, "type", "native") if connection is not None else None
        if self.inferior.pid and kind == "native":
            return ["--pid", str(self.inferior.pid)]
        if not self.inferior.pid:
            raise CommandError("no process and no core file: run or attach to a Wasmtime process, "
                               "or load its core with `core FILE`")
        self.why_not = f"the inferior is on a {kind} target"
        return None


def _run(command, arg):
    """Run a shared command; its error becomes a gdb error (one line, no Python traceback)."""
    try:
        return command(GdbInferior(), arg)
    except CommandError as e:
        raise gdb.GdbError(str(e)) from None


class VmctxCommand(gdb.Command):
    """Decode the VMComponentContext at ADDRESS.

Usage: vmctx ADDRESS [--wasmtime VERSION] [count options] [--summary | --json] [--exe FILE] [--sysroot DIR]
                     [--ptr-size N] [--byte-order little|big] [--address A] [--force]
ADDRESS is any gdb expression (everything before the first option). The magic
at offset 0 is checked first. On a local process or a core loaded with `core
FILE`, vmctx-emu's scan reads the context: the release from the inferior's
Wasmtime image, the shape from the VMComponentOffsets copy Wasmtime stores
before the context; it prints every field (--summary: the context at a glance,
--json: both). Count options (`vmctx-emu versions` lists each release's) are
needed only where there is no stored copy, and on targets the scan cannot read
(remote ones); given, they and --wasmtime decide the decode, and a difference
from the stored copy is noted. The pointer size and byte order default to the
inferior's."""

    def __init__(self):
        super().__init__("vmctx", gdb.COMMAND_DATA, prefix=True)

    def invoke(self, arg, from_tty):
        notes, text = _run(lambda inferior, a: context_command(inferior, a, self.__doc__ + "\n"), arg)
        for note in notes:
            gdb.write(note + "\n", gdb.STDERR)
        gdb.write(text)


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
        gdb.write(_run(scan_command, arg))


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
        gdb.write(_run(where_command, arg))


VmctxCommand()
VmctxScanCommand()
VmctxWhereCommand()
