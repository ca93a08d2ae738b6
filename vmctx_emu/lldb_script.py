# lldb's part of the command file (`command script import PATH`), after debugger_script.py's shared
# part; both written out by `python -m vmctx_emu.lldb`. The shared part does the work; this reads the
# process's memory, evaluates expressions and names the target the lldb way, and adds one command,
# `vmctx`, whose first word chooses: `vmctx scan ...`, `vmctx where ...`, else `vmctx ADDRESS ...`.
import struct

import lldb

# ELF: the class, data and type bytes of a little-endian 64-bit core; PT_NOTE; NT_PRPSINFO and its pr_pid.
ELF64_LE_CORE = (b"\x7fELF\x02\x01", 4)
PT_NOTE, NT_PRPSINFO, PRPSINFO_PID = 4, 3, 24


def _core_pid(path):
    """The pid an ELF core file records (NT_PRPSINFO), or None when `path` is not one we can read."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:6] != ELF64_LE_CORE[0] or struct.unpack_from("<H", head, 16)[0] != ELF64_LE_CORE[1]:
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
                if p_type != PT_NOTE:
                    continue
                f.seek(p_offset)
                notes, pos = f.read(min(p_filesz, 1 << 20)), 0
                while pos + 12 <= len(notes):
                    namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
                    desc = pos + 12 + (namesz + 3) // 4 * 4
                    if ntype == NT_PRPSINFO and descsz >= PRPSINFO_PID + 4:
                        return struct.unpack_from("<i", notes, desc + PRPSINFO_PID)[0]
                    pos = desc + (descsz + 3) // 4 * 4
    except (OSError, struct.error):
        return None
    return None


def _loaded_core(pid):
    """The core file lldb loaded for process `pid`: lldb 16 has no API that names it, but it maps the file,
    so it is the mapped ELF core (of this lldb process) that records `pid`."""
    seen = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(None, 5)
            path = parts[5].strip() if len(parts) == 6 else ""
            if path.startswith("/") and path not in seen:
                seen.add(path)
                if _core_pid(path) == pid:
                    return path
    return None


class LldbInferior(Inferior):
    save_core = "`process save-core FILE`"

    def __init__(self, debugger, exe_ctx):
        self.target_ = exe_ctx.GetTarget() if exe_ctx.GetTarget().IsValid() else debugger.GetSelectedTarget()
        self.process = self.target_.GetProcess()
        self.frame = exe_ctx.GetFrame()
        if not self.frame.IsValid() and self.process.IsValid():
            self.frame = self.process.GetSelectedThread().GetSelectedFrame()
        self.pointer_size = self.target_.GetAddressByteSize() or 8
        self.byte_order = "big" if self.target_.GetByteOrder() == lldb.eByteOrderBig else "little"

    def evaluate(self, expression):
        scope = self.frame if self.frame.IsValid() else self.target_
        value = scope.EvaluateExpression(expression)
        error = value.GetError()
        if not error.Success():
            raise CommandError(f"vmctx: cannot evaluate {expression!r}: {' '.join(str(error).split())}")
        return value.GetValueAsUnsigned() & ((1 << (8 * self.pointer_size)) - 1)

    def read(self, address, size):
        error = lldb.SBError()
        data = self.process.ReadMemory(address, size, error)
        if not error.Success() or data is None:
            raise ReadError(error.GetCString() or "memory read failed")
        return data

    def target(self):
        process = self.process
        if not process.IsValid() or not process.GetProcessID() or process.GetState() in (
                lldb.eStateInvalid, lldb.eStateExited, lldb.eStateDetached, lldb.eStateUnloaded):
            raise CommandError("no process and no core file: run or attach to a Wasmtime process, or load its core "
                               "with `target create --core FILE`")
        pid = process.GetProcessID()
        if process.GetPluginName() == "elf-core":
            path = _loaded_core(pid)
            if path is None:
                raise CommandError(f"cannot tell which file lldb loaded this core of pid {pid} from; run "
                                   "`vmctx-emu scan --core FILE` on it")
            return ["--core", path]
        platform = self.target_.GetPlatform().GetName()
        if platform == "host":
            return ["--pid", str(pid)]
        self.why_not = f"the process is on the {platform} platform"
        return None


def _write(stream, text):
    stream.write(text)
    stream.flush()


def vmctx(debugger, command, exe_ctx, result, internal_dict):
    """Decode the VMComponentContext at ADDRESS; `vmctx scan`, `vmctx where` as in gdb.

Usage: vmctx ADDRESS [--wasmtime VERSION] [count options] [--summary | --json] [--exe FILE] [--sysroot DIR]
                     [--ptr-size N] [--byte-order little|big] [--address A] [--force]
       vmctx scan [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--records | --json]
       vmctx where EXPRESSION... [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--json]
ADDRESS and each EXPRESSION are lldb expressions ($pc, a register, a pointer).
On a local process or a core loaded with `target create --core FILE`,
vmctx-emu's scan reads the context: the release from the process's Wasmtime
image, the shape from the VMComponentOffsets copy Wasmtime stores before the
context; it prints every field (--summary: the context at a glance, --json:
both). Count options (`vmctx-emu versions` lists each release's) are needed
only where there is no stored copy, and on targets the scan cannot read
(remote ones); given, they and --wasmtime decide the decode, and a difference
from the stored copy is noted. `vmctx scan` finds and decodes every context
(--records: every field); `vmctx where` says which context, field,
trampoline or JIT region each address belongs to."""
    first, _, rest = command.strip().partition(" ")
    try:
        inferior = LldbInferior(debugger, exe_ctx)
        if first == "scan":
            notes, text = [], scan_command(inferior, rest)
        elif first == "where":
            notes, text = [], where_command(inferior, rest)
        else:
            notes, text = context_command(inferior, command, vmctx.__doc__ + "\n")
    except CommandError as e:
        result.SetError(str(e))
        return
    for note in notes:
        result.AppendWarning(note)
    result.AppendMessage(text.rstrip("\n"))


def __lldb_init_module(debugger, internal_dict):
    debugger.HandleCommand(f"command script add -o -f {__name__}.vmctx vmctx")
