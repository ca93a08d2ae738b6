# The part of the gdb and lldb command files that is the same: `vmctx ADDRESS`, `vmctx scan` and
# `vmctx where` over an `Inferior` (what the debugger supplies: evaluate an expression, read memory,
# name the target). `python -m vmctx_emu.gdb` / `python -m vmctx_emu.lldb` write it, followed by the
# debugger's own part, into one command file.
#
# A debugger's embedded Python does not see the package's environment, so this uses only the
# standard library. The engine is the package's CLI, run with its own interpreter: `vmctx-emu scan`
# (the scan decides the release from the target's Wasmtime image and the shape from the
# VMComponentOffsets copy Wasmtime stores before each context), `where`, `layout` and `decode`.
import json
import os
import shlex
import subprocess
import tempfile

PYTHON = "@PYTHON@"
VMCOMPONENT_MAGIC = int("@VMCOMPONENT_MAGIC@")


class CommandError(Exception):
    """What the command prints as its error: one line, no traceback (each debugger raises it its own way)."""


class Inferior:
    """What a debugger supplies; its part of the command file subclasses this."""

    def split(self, arg):
        """The command's words, as the debugger splits a command line."""
        return shlex.split(arg)

    def evaluate(self, expression):
        """The value of `expression` as an unsigned integer (an address)."""
        raise NotImplementedError

    def read(self, address, size):
        """`size` bytes at `address`; raises `ReadError` (any message) when they cannot be read."""
        raise NotImplementedError

    def target(self):
        """`["--pid", PID]` or `["--core", FILE]` for the scan; None when the scan cannot read the target
        (a remote one; then the reason is in `why_not`); `CommandError` (its message without the command's
        name) when there is no process and no core."""
        raise NotImplementedError

    why_not = None  # why target() is None, for the messages
    save_core = "`gcore FILE`"  # how the debugger writes a core file
    pointer_size = 8
    byte_order = "little"


class ReadError(Exception):
    """Memory the debugger cannot read."""


def run(args, rename=None):
    """Run vmctx-emu; its error becomes the command's, with our temp file named as what it holds."""
    proc = subprocess.run([PYTHON, "-m", "vmctx_emu", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode:
        message = proc.stderr.strip() or f"vmctx-emu exited with {proc.returncode}"
        for old, new in (rename or {}).items():
            message = message.replace(old, new)
        raise CommandError(message)
    return proc.stdout


def _read(inferior, address, size, what):
    """`size` bytes at `address`; the last byte is probed first, so a huge wrong size fails at once."""
    try:
        inferior.read(address + size - 1, 1)
        return bytes(inferior.read(address, size))
    except (ReadError, MemoryError, OverflowError, ValueError) as e:
        raise CommandError(f"vmctx: cannot read {what} ({size} bytes at {address:#x}..{address + size:#x}): "
                           f"{e or type(e).__name__}") from None


def _take(words, spec, usage, command):
    """(options, the other words) from `words`: `spec` maps each option to how many values it takes."""
    options, rest, i = [], [], 0
    while i < len(words):
        name = words[i].split("=", 1)[0]
        takes = spec.get(name)
        if takes is None and words[i].startswith("--"):
            raise CommandError(f"{command}: unexpected {words[i]!r}; usage: {usage}")
        if takes is None:
            rest.append(words[i])
            i += 1
            continue
        if "=" in words[i] and takes:
            options.append(words[i])
            i += 1
            continue
        if i + takes >= len(words):
            raise CommandError(f"{command}: a value is needed after {words[i]!r}; usage: {usage}")
        options += words[i : i + 1 + takes]
        i += 1 + takes
    return options, rest


def _value(options, name):
    """The value of option `name` in `options` (None if absent)."""
    for i, word in enumerate(options):
        if word == name and i + 1 < len(options):
            return options[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _without(options, names):
    """`options` without the options `names` (and their values)."""
    kept, words = [], iter(options)
    for word in words:
        name = word.split("=", 1)[0]
        if name in names:
            if "=" not in word and names[name]:
                next(words, None)
        else:
            kept.append(word)
    return kept


SCAN_OPTIONS = {"--wasmtime": 1, "--json": 0, "--records": 0, "--all": 0, "--exe": 1, "--sysroot": 1}
SCAN_USAGE = "vmctx scan [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--records | --json]"


def scan_command(inferior, arg):
    """`vmctx scan [options]`: `vmctx-emu scan` on the inferior."""
    options, rest = _take(inferior.split(arg), SCAN_OPTIONS, SCAN_USAGE, "vmctx scan")
    if rest:
        raise CommandError(f"vmctx scan: unexpected {rest[0]!r}; usage: {SCAN_USAGE}")
    return run(["scan", *_scanned(inferior, "vmctx scan"), *options])


WHERE_OPTIONS = {"--wasmtime": 1, "--json": 0, "--all": 0, "--exe": 1, "--sysroot": 1}
WHERE_USAGE = "vmctx where EXPRESSION... [--wasmtime VERSION] [--all] [--exe FILE] [--sysroot DIR] [--json]"


def where_command(inferior, arg):
    """`vmctx where EXPRESSION... [options]`: each expression evaluated by the debugger, then `vmctx-emu where`."""
    options, expressions = _take(inferior.split(arg), WHERE_OPTIONS, WHERE_USAGE, "vmctx where")
    if not expressions:
        raise CommandError(f"vmctx where: no address given; usage: {WHERE_USAGE}")
    addresses = [f"{inferior.evaluate(e) & 0xFFFF_FFFF_FFFF_FFFF:#x}" for e in expressions]
    return run(["where", *addresses, *_scanned(inferior, "vmctx where"), *options])


def _target(inferior, command):
    """`inferior.target()`, its error worded for `command`."""
    try:
        return inferior.target()
    except CommandError as e:
        raise CommandError(f"{command}: {e}") from None


def _scanned(inferior, command):
    """The scan's arguments naming the inferior; an error for a target the scan cannot read."""
    source = _target(inferior, command)
    if source is None:
        raise CommandError(f"{command}: {inferior.why_not}; scan reads a local process or a core file (make one "
                           f"with {inferior.save_core}, then run `vmctx-emu scan --core FILE`)")
    return source


CONTEXT_USAGE = ("vmctx ADDRESS [--wasmtime VERSION] [count options] [--summary | --json] [--exe FILE] "
                 "[--sysroot DIR] [--ptr-size N] [--byte-order little|big] [--address A] [--force]")
# Options of `vmctx ADDRESS` that are not counts: how many values each takes. Any other `--NAME VALUE` is a
# count option, checked by the CLI against the release's.
CONTEXT_OPTIONS = {"--wasmtime": 1, "--json": 0, "--summary": 0, "--exe": 1, "--sysroot": 1, "--ptr-size": 1,
                   "--byte-order": 1, "--address": 1, "--force": 0, "--help": 0, "-h": 0}
# What only decoding with typed counts uses, and what only the scan takes.
DECODE_ONLY = {"--ptr-size": 1, "--byte-order": 1, "--address": 1, "--force": 0}
SCAN_ONLY = {"--exe": 1, "--sysroot": 1, "--summary": 0}
COUNTS_NEEDED = ("give the component's counts after the address, e.g. `vmctx ADDRESS --lowerings 3 --instances 2` "
                 "(absent counts are 0; `vmctx-emu versions` lists each release's count options)")


def _split_context(inferior, arg):
    """(address expression, options): the expression is everything before the first option, so
    `vmctx (char *)ctx + 16 --lowerings 3` needs no quoting."""
    expression, dashes, rest = arg.partition(" --")
    if expression.strip().startswith("-"):
        expression, dashes, rest = "", "", expression.strip()
    words = inferior.split(dashes + rest)
    options, counts, i = [], [], 0
    while i < len(words):
        name = words[i].split("=", 1)[0]
        takes = CONTEXT_OPTIONS.get(name, 1 if name.startswith("-") else None)
        if takes is None:
            raise CommandError(f"vmctx: unexpected {words[i]!r} after the options; usage: {CONTEXT_USAGE}")
        if "=" in words[i] or not takes:
            step = 1
        elif i + 1 < len(words):
            step = 2
        else:
            raise CommandError(f"vmctx: a value is needed after {words[i]!r}; usage: {CONTEXT_USAGE}")
        (options if name in CONTEXT_OPTIONS else counts).extend(words[i : i + step])
        i += step
    return expression.strip(), options, counts


def context_command(inferior, arg, usage_text):
    """`vmctx ADDRESS [options]`: (notes for the error stream, the output).

    On a local process or a core the scan reads the context (release from the target's Wasmtime image,
    shape from the stored VMComponentOffsets copy); typed counts are needed only where it cannot, and
    then decide the decode (noting where they differ from the stored copy). On other targets the typed
    counts decode the bytes the debugger reads, as `vmctx-emu decode` would."""
    expression, options, counts = _split_context(inferior, arg)
    if "--help" in options or "-h" in options:
        return [], usage_text
    if not expression:
        raise CommandError(f"usage: {CONTEXT_USAGE}; see 'help vmctx'")
    address = inferior.evaluate(expression)
    magic = _read(inferior, address, 4, "the magic")
    if int.from_bytes(magic, inferior.byte_order) != VMCOMPONENT_MAGIC:
        raise CommandError(f"vmctx: no VMComponentContext at {address:#x}: found bytes {magic.hex(' ')} "
                           f"({magic!r}), expected the magic b'comp'")
    source = _target(inferior, "vmctx")
    if source is not None and not counts:
        typed = [w for w in options if w.split("=", 1)[0] in DECODE_ONLY]
        if typed:
            raise CommandError(f"vmctx: {typed[0].split('=', 1)[0]} is for decoding with counts typed; without "
                               "them the scan reads the pointer size, byte order, release and shape from the target")
        return [], _scanned_context(address, source, options)
    if not counts:
        raise CommandError(f"vmctx: {inferior.why_not}, so the scan cannot read the release and shape: "
                           + COUNTS_NEEDED)
    notes, found = [], None
    release = _value(options, "--wasmtime")
    if source is not None:
        found, why = _stored_shape(address, source, options)
        if found is None:
            notes.append(f"vmctx: {why}: decoding with the counts given")
        else:
            release = release or found["wasmtime"]
    options = _without(options, SCAN_ONLY | {"--wasmtime": 1})
    if release is not None:
        options = ["--wasmtime", release, *options]
    if "--ptr-size" not in options:
        options += ["--ptr-size", str(inferior.pointer_size)]
    layout = json.loads(run(["layout", "--json", *_without(options, DECODE_ONLY | {"--json": 0}), *counts]))
    if found is not None:
        notes += _differences(address, found, layout)
    size = layout["size_of_vmctx"]
    data = _read(inferior, address, size, "the context of this layout (are the counts right?)")
    fd, path = tempfile.mkstemp(prefix="vmctx-debugger-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        args = ["decode", path, "--byte-order", inferior.byte_order, "--address", hex(address), *options, *counts]
        return notes, run(args, rename={path: f"the {size} bytes at {address:#x}"})
    finally:
        os.unlink(path)


def _scan_message(error):
    """A failed scan's message without the CLI's prefix, for a sentence of our own."""
    return str(error).removeprefix("vmctx-emu scan: error: ")


def _scanned_context(address, source, options):
    """The scan's text (or JSON) of the one context at `address`."""
    options = _without(options, {"--summary": 0}) + ([] if "--summary" in options or "--json" in options
                                                     else ["--records"])
    try:
        return run(["scan", *source, "--context", hex(address), *options])
    except CommandError as e:
        message = _scan_message(e)
        if "no component context at" in message or "no Wasmtime in" in message:
            raise CommandError(f"vmctx: {message}; so no stored VMComponentOffsets copy gives its shape: "
                               + COUNTS_NEEDED) from None
        raise


def _stored_shape(address, source, options):
    """(what the scan reads at `address` without being told the release or shape, None) or (None, why not)."""
    scan_options = [word for name in ("--exe", "--sysroot") if _value(options, name) is not None
                    for word in (name, _value(options, name))]
    try:
        doc = json.loads(run(["scan", *source, "--context", hex(address), "--json", *scan_options]))
    except CommandError as e:
        return None, _scan_message(e)
    [ctx] = doc["contexts"]
    guessed = [a for a in ctx["anomalies"] if a.get("kind") == "guessed_shape"]
    if ctx["layout"].get("counts") is None or guessed:
        return None, (f"the scan finds no stored VMComponentOffsets copy before {address:#x} "
                      f"({ctx['shape_from'] or 'shape unknown'})")
    return {"wasmtime": ctx["layout"]["wasmtime"], "layout": ctx["layout"]["layout"],
            "counts": ctx["layout"]["counts"], "options": ctx["summary"]["options"],
            "shape_from": ctx["shape_from"]}, None


def _differences(address, found, layout):
    """Notes where the release and counts given differ from what the scan reads at `address`."""
    notes = []
    if layout["layout"] != found["layout"]:
        notes.append(f"vmctx: the release given is layout {layout['layout']} ({layout['wasmtime']}); the target's "
                     f"context at {address:#x} is Wasmtime {found['wasmtime']} (layout {found['layout']}): "
                     "decoding as given")
        return notes
    differ = [f"{name} {layout['counts'].get(name, 0)} (stored {value})" for name, value in found["counts"].items()
              if layout["counts"].get(name, 0) != value]
    if differ:
        notes.append(f"vmctx: the counts given differ from the VMComponentOffsets copy stored before {address:#x}: "
                     f"{', '.join(differ)}; decoding with the counts given (the stored shape: {found['options']})")
    return notes
