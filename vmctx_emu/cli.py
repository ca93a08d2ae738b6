"""`vmctx-emu`: a thin command line over the package; all work is done by the library.

Parse, call, render: each command reads its input with the library and prints it with
`vmctx_emu.describe`. Start-up pays only for what the command line asks: modules that need numpy
(dumps, decoding, scanning) are imported inside the commands that use them, and only the
command given gets its options built (`build_parser(commands=...)`), so `--help`, `--version`,
`layout` and `versions` start without numpy.
"""

import argparse
import codecs
import difflib
import os
import re
import sys

from . import __version__
from .checks import check_u32
from .describe.options import count_option
from .errors import ArgumentValueError, BadMagicError, DumpError, SidecarConflictError, TooManyCandidatesError, \
    UnknownReleaseError, VMCtxEmuError
from .layouts.ptr import HostPtr, PtrSize
from .layouts.releases import COUNT_ORDER, LAYOUTS, SEED, resolve_release, resolve_wasmtime

__all__ = ["main", "Parser", "build_parser", "add_layout_options", "count_option", "count_options"]


def count_options(layout=SEED):
    """CLI option -> Rust count name for `layout`, in the Rust struct's order."""
    return {count_option(name): name for name in layout.count_names}


def all_count_names():
    """Every count some release has, in the Rust order: infer without --wasmtime takes any of them."""
    return tuple(n for n in COUNT_ORDER if any(n in layout.count_names for layout in LAYOUTS))


class Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, no usage dump; no abbreviated options.

    An unrecognized option that is a count of other releases, or an option of other commands, is
    named with where it belongs, since the count options change with --wasmtime; one that is close
    to an option of the command (or a mistyped command or choice) gets "did you mean ...".
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.layout = None  # the layout whose count options were offered (top-level parser only)
        self.parsed_command = None  # the COMMAND the last parse found (top-level parser only)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        self.parsed_command = getattr(namespace, "command", None)
        return namespace, extras

    def error(self, message):
        if message.startswith("unrecognized arguments: ") and self.layout is not None:
            words = message.split(": ", 1)[1].split()
            message += "".join(f"; {hint}" for hint in _unrecognized_hints(self.layout, words, self.parsed_command))
        else:
            message += _choice_hint(message)
        self.exit(2, f"{self.prog}: error: {message}\n")


# argparse's words for a value outside `choices` (the COMMAND, --byte-order): "invalid choice: 'x' (choose
# from 'a', 'b')", or from Python 3.12.8 on without the quotes around the choices.
_INVALID_CHOICE = re.compile(r"invalid choice: '?(?P<word>.*?)'? \(choose from (?P<choices>.*)\)$")


def _did_you_mean(word, candidates):
    """The candidates close to `word` (difflib's ratio), closest first: at most three."""
    return difflib.get_close_matches(word, sorted(candidates), n=3, cutoff=0.7)


def _choice_hint(message):
    """"; did you mean layout?" for a mistyped choice, from argparse's own message; "" when nothing is close."""
    m = _INVALID_CHOICE.search(message)
    if not m:
        return ""
    close = _did_you_mean(m["word"], (c.strip().strip("'") for c in m["choices"].split(",")))
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _release_runs(layouts):
    """`layouts` (in release order) as contiguous runs: "L4 - L11 (v12.0.0 - v51.0.0)"."""
    wanted = {id(layout) for layout in layouts}
    indexes = [i for i, layout in enumerate(LAYOUTS) if id(layout) in wanted]
    runs, start = [], None
    for k, i in enumerate(indexes):
        if start is None:
            start = i
        if k + 1 == len(indexes) or indexes[k + 1] != i + 1:
            first, last = LAYOUTS[start], LAYOUTS[i]
            if first.id == last.id:
                runs.append(f"{first.id} ({first.range_text})")
            else:
                lo = f"v{first.first}" if first.first else first.range_text  # the seed is known by its commit
                runs.append(f"{first.id} - {last.id} ({lo} - v{last.last})")
            start = None
    return ", ".join(runs)


def option_strings(parser):
    """{None: the top-level options, COMMAND: that command's options} of a parser from `build_parser`.

    argparse lists no parser's options publicly: this reads its `_actions` (each Action's
    `option_strings` is public), here and nowhere else. The commands are the ones
    `build_parser` recorded in `parser.commands`.
    """
    found = {None: {o for action in parser._actions for o in action.option_strings}}
    for name, sub in parser.commands.items():
        found[name] = {o for action in sub._actions for o in action.option_strings} - {"-h", "--help"}
    return found


def commands_taking(layout, option, explicit=False, found=None):
    """The commands (sorted) whose options include `option`, with `layout`'s count options (`found`:
    `option_strings` of that parser, when already known)."""
    found = found or option_strings(build_parser(layout, explicit))
    return sorted(name for name, options in found.items() if name is not None and option in options)


def _other_releases_count(layout, option):
    """"--x is a count of L4 - L11 (...), not of seed: ..." when `option` is a count of other releases only."""
    names = [n for n in COUNT_ORDER if f"--{count_option(n)}" == option]
    having = [other for other in LAYOUTS if any(n in other.count_names for n in names)]
    if not having:
        return None
    return (f"{option} is a count of {_release_runs(having)}, not of {layout.name}: choose one of those with "
            "--wasmtime VERSION (`vmctx-emu versions` lists each release's counts)")


def _unrecognized_hints(layout, words, command=None):
    """Where each unrecognized `-option` belongs: other releases' counts, or other commands; else the options
    of `command` (and the top level's) it is close to, else the close count of other releases."""
    hints = []
    found = option_strings(build_parser(layout))  # every command's options: only now, on an error
    own = found[None] | found.get(command, set())
    for word in words:
        if not word.startswith("-") or word == "-":
            continue
        option = word.split("=", 1)[0]
        other = _other_releases_count(layout, option)
        commands = commands_taking(layout, option, found=found)
        if other:
            hints.append(other)
        elif commands:
            hints.append(f"{option} is an option of {', '.join(commands)}")
        elif close := _did_you_mean(option, own):
            hints.append(f"{option}: did you mean {' or '.join(close)}?")
        elif close := _did_you_mean(option, {f"--{count_option(n)}" for n in COUNT_ORDER}):
            hints.append(f"{option}: did you mean {close[0]}? {_other_releases_count(layout, close[0])}")
    return hints


def _ptr_size(text):
    if text == "host":
        return HostPtr
    try:
        return PtrSize(int(text, 0))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e) if "pointer size" in str(e) else
                                         f"expected 'host' or an int, got {text!r}") from None


def _u32(option):
    def parse(text):
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        try:
            return check_u32(f"--{option}", value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _positive_int(noun, not_positive):
    """An argparse type: a decimal int above 0; `noun` names what was expected, `not_positive` words 0 or less."""
    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{not_positive}, got {value}")
        return value

    return parse


_pid = _positive_int("a process id", "a process id is positive")
_positive = _positive_int("a positive count", "expected a positive count")


ADDRESS_MAX = 2**64 - 1


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds such as 0.5 or 2, got {text!r}") from None
    if not 0.05 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"seconds between reads are from 0.05 to 86400, got {text}")
    return value


def _address(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int such as 0x7f0012340000, got {text!r}") from None
    if not 0 <= value <= ADDRESS_MAX:
        raise argparse.ArgumentTypeError(f"an address is in [0, {ADDRESS_MAX:#x}] (64 bits), got {text}")
    return value


def check_address_fits(address, ptr_size, what="--address"):
    """An address wider than the pointer size cannot be where the context was (4-byte pointers: 32 bits)."""
    bits = min(64, 8 * int(ptr_size))
    if address is not None and address >> bits:
        raise ArgumentValueError(f"{what} {address:#x} does not fit a {int(ptr_size)}-byte pointer "
                                 f"(at most {(1 << bits) - 1:#x})")


def add_layout_options(parser, layout=SEED, for_dump=False):
    """The release, pointer size and that release's counts, for every command that needs a layout.

    For a dump they default to None: only what is given overrides the sidecar.
    """
    group = parser.add_argument_group(
        "layout" + (" (must agree with the dump's sidecar unless --force; unset counts are 0 without one)"
                    if for_dump else "")
    )
    group.add_argument(
        "--wasmtime",
        default=None,
        metavar="VERSION",
        help="Wasmtime release whose layout to use: 0.40.1, v21.0.2, 21 (newest 21.x) or seed "
        f"(default: {'the sidecar' + chr(39) + 's, else ' if for_dump else ''}seed); "
        "the count options below are that release's",
    )
    group.add_argument(
        "--ptr-size",
        type=_ptr_size,
        default=None if for_dump else HostPtr,
        metavar="N|host",
        help="pointer size in bytes" + ("" if for_dump else f" (default: host = {int(HostPtr)})"),
    )
    for option, rust_name in count_options(layout).items():
        group.add_argument(
            f"--{option}",
            dest=rust_name,
            type=_u32(option),
            default=None if for_dump else 0,
            metavar="N",
            help=f"{rust_name} (u32" + (")" if for_dump else ", default 0)"),
        )
    if for_dump:
        group.add_argument("--byte-order", choices=("little", "big"), default=None,
                           help="byte order of the dump (default: sidecar, else this host's)")
        group.add_argument("--address", type=_address, default=None,
                           help="the context's address when dumped (default: sidecar)")
        group.add_argument("--force", action="store_true",
                           help="read the dump even if its magic is wrong (reported as an anomaly), or with layout "
                                "options that contradict its sidecar (the options win)")


def _counts(args):
    names = count_options(args.layout).values()
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def load_from_args(args, path):
    from .dumps.dump import load_dump

    if args.ptr_size is not None:
        check_address_fits(args.address, args.ptr_size)
    # An option the sidecar answers must agree with it (`SidecarConflictError`) unless --force; --address
    # always says where the context is taken to be.
    ctx = load_dump(path, ptr=args.ptr_size, byte_order=args.byte_order, counts=_counts(args),
                    address=args.address, check_magic=not args.force, wasmtime=args.wasmtime,
                    debug_assertions=False if getattr(args, "release", False) else None,
                    strict_sidecar=not args.force)
    check_address_fits(args.address, ctx.offsets.ptr, f"{path}: --address")
    return ctx


def offsets_from_args(args):
    return args.layout.offsets(args.ptr_size, **_counts(args))


def write_chunks(out, chunks):
    """Write a renderer's pieces to `out`: `chunks(binary)` gives ASCII bytes-like pieces for a binary
    stream (`out.buffer`: hundreds of megabytes are never decoded and re-encoded), text otherwise."""
    binary = getattr(out, "buffer", None)
    if binary is not None:
        out.flush()
    for chunk in chunks(binary is not None):
        (binary or out).write(chunk)


def cmd_layout(args, out):
    offsets = offsets_from_args(args)
    if args.svg:
        from .describe.drawing import layout_svg

        out.write(layout_svg(offsets, title=f"VMComponentContext, {offsets.LAYOUT.id} ({offsets.LAYOUT.range_text}), "
                                            f"ptr_size={offsets.pointer_size()}, {offsets.size_of_vmctx():,} bytes"))
        return
    from .describe.layout import layout_json, layout_table

    out.write((layout_json(offsets) if args.json else layout_table(offsets)) + "\n")


def cmd_decode(args, out):
    """Exit status 1 with --strict when the decode reports anomalies."""
    from .describe.capture import origin_doc, origin_lines
    from .describe.records import decoded_json_chunks, decoded_table_chunks, json_object_chunks
    from .dumps.decode import decode

    decoded = decode(load_from_args(args, args.dump))
    # Streamed: a large dump never becomes one string (nor, as JSON, one dict per record).
    origin = origin_doc(decoded.ctx)  # a captured dump's: where it came from
    if args.json and origin is not None:
        write_chunks(out, lambda binary: json_object_chunks(decoded, binary=binary, after={"origin": origin},
                                                            end="\n"))
    elif args.json:
        write_chunks(out, lambda binary: decoded_json_chunks(decoded, binary=binary))
    else:
        out.write("".join(f"{line}\n" for line in origin_lines(decoded.ctx)))
        write_chunks(out, lambda binary: decoded_table_chunks(decoded, binary=binary))
    return 1 if args.strict and decoded.anomalies else 0


def cmd_hexdump(args, out):
    from .describe.capture import origin_lines
    from .describe.hexdump import hexdump_chunks

    ctx = load_from_args(args, args.dump)
    out.write("".join(f"{line}\n" for line in origin_lines(ctx, evidence=False)))  # a captured dump's origin
    write_chunks(out, lambda binary: hexdump_chunks(ctx, binary=binary, squeeze=not args.no_squeezing))


def cmd_diff(args, out):
    """Exit status as diff(1): 0 when the dumps decode the same, 1 when they differ."""
    from .describe.capture import origin_lines
    from .describe.diff import diff_json, diff_rows, diff_table
    from .dumps.decode import decode, padding_differences

    old, new = load_from_args(args, args.old), load_from_args(args, args.new)
    if old.offsets.regions() != new.offsets.regions():
        raise DumpError(
            f"{args.old} and {args.new} have different layouts "
            f"({old.offsets.size_of_vmctx()} vs {new.offsets.size_of_vmctx()} bytes, "
            f"{old.offsets.component} vs {new.offsets.component}): give the same layout options"
        )
    a, b = decode(old), decode(new)
    padding = padding_differences(a, b)
    if not args.json and (old.origin or new.origin):  # captured dumps: where each came from
        out.write("".join(f"{which} {path}: {(origin_lines(ctx, evidence=False) or ['no origin recorded'])[0]}\n"
                          for which, path, ctx in (("---", args.old, old), ("+++", args.new, new))))
    out.write((diff_json(a, b, padding) if args.json else diff_table(a, b, padding)) + "\n")
    return 1 if padding or next(diff_rows(a, b), None) is not None else 0


def cmd_infer(args, out):
    """Exit status 1 when no release layout fits.

    The dump's sidecar, when there is one (and no --no-sidecar): its pointer size, byte order, address and
    build are the defaults of --ptr-size, --byte-order, --address and --release (facts of where the bytes
    came from); its release narrows the search to that release, as --wasmtime would (--wasmtime wins); its
    counts are what it claims, not a constraint: every shape is still searched and the output says where
    the sidecar's stands. Without a sidecar: the host's pointer size and byte order, every release.
    """
    from .describe.infer import infer_json, infer_text
    from .dumps.dump import read_dump_bytes, read_sidecar, sidecar_path
    from .dumps.infer import INFER_MAX_BYTES, infer_releases, shape_standing

    side = None if args.no_sidecar else read_sidecar(args.dump)
    taken = {}  # sidecar key -> the value taken from it, where no option gave one
    if side is not None:
        if args.ptr_size is None:
            taken["ptr_size"] = side["ptr_size"]
        if args.byte_order is None and side.get("byte_order"):
            taken["byte_order"] = side["byte_order"]
        # the address of a context of the sidecar's pointer size, not of one the options make up
        if args.address is None and side.get("address") is not None and \
                int(args.ptr_size or side["ptr_size"]) == side["ptr_size"]:
            taken["address"] = side["address"]
        if not args.release and side.get("debug_assertions") is False:
            taken["debug_assertions"] = False
        if args.wasmtime is None:
            taken["wasmtime"] = side.get("wasmtime", "seed")
    ptr = args.ptr_size or (PtrSize(taken["ptr_size"]) if "ptr_size" in taken else HostPtr)
    byte_order = args.byte_order or taken.get("byte_order", sys.byteorder)
    address = taken.get("address", args.address)
    debug = not args.release and taken.get("debug_assertions", True)
    check_address_fits(address, ptr)
    data = read_dump_bytes(args.dump, INFER_MAX_BYTES)
    side_layout = None if side is None else resolve_wasmtime(side.get("wasmtime")).layout
    only = [args.layout] if args.wasmtime is not None else None if side is None else [side_layout]
    counts = {name: getattr(args, name) for name in _infer_count_names(args) if getattr(args, name) is not None}
    results = infer_releases(data, ptr, byte_order, layouts=only, address=address,
                             counts=counts, debug_assertions=debug, limit=args.limit)
    sidecar = None
    if side is not None:
        checked = only[0].id == side_layout.id
        rank = shape_standing(results, data, ptr, byte_order, layout=side_layout, counts=side["counts"],
                              address=address, known=counts, debug_assertions=debug) if checked else None
        sidecar = {"path": sidecar_path(args.dump), "taken": taken, "release": side.get("wasmtime", "seed"),
                   "counts": side["counts"], "rank": rank, "checked": checked}
    render = infer_json if args.json else infer_text
    out.write(render(results, size=len(data), ptr_size=ptr, byte_order=byte_order, debug_assertions=debug,
                     sidecar=sidecar) + "\n")
    return 0 if results else 1


def _infer_count_names(args):
    return args.layout.count_names if args.wasmtime is not None else all_count_names()


def cmd_scan(args, out):
    from .describe.scan import scan_json_chunks, scan_text_chunks
    from .live import scan

    if args.watch is not None:
        return _watch(args, out)
    source = args.pid if args.pid is not None else args.core
    if args.save is not None:
        from .dumps.files import check_free_directory

        check_free_directory(args.save)  # before a scan that may take long
    progress = _ProgressLine(args) if _show_progress(args, out) else None
    try:
        result = scan(source, wasmtime=args.wasmtime, progress=progress, exe=args.exe, sysroot=args.sysroot,
                      include_freed=args.all or args.context is not None, decode=False, capture=args.save is not None,
                      focus=args.context)
    finally:
        if progress:
            progress.clear()
    if args.context is not None:
        from .live.context_at import context_at

        result = context_at(result, args.context)
    if args.save is not None:
        _save(args, result)
    # Streamed, a context decoded at a time: thousands of contexts' decodes and text are never held whole.
    chunks = scan_json_chunks(result) if args.json else scan_text_chunks(result, records=args.records,
                                                                         colour=_colour(out))
    for chunk in chunks:
        out.write(chunk)
    return 0


def _watch(args, out):
    """Scan every `--watch` seconds and print what changed, until Ctrl-C (or `--reads` reads)."""
    import time

    from .describe.scan import scan_text_chunks
    from .describe.watch import changes, snapshot
    from .live import scan

    if args.pid is None or args.json or args.records or args.save is not None or args.context is not None:
        raise ArgumentValueError("--watch reads a live process (--pid) again and again, and prints text changes: "
                                 "without --core, --json, --records, --save or --context")
    reads = 0
    try:
        result = scan(args.pid, wasmtime=args.wasmtime, include_freed=args.all, decode=False)
        for chunk in scan_text_chunks(result, colour=_colour(out)):
            out.write(chunk)
        before, reads = snapshot(result), 1
        out.write(f"watching pid {args.pid} every {args.watch:g} s (Ctrl-C stops)\n")
        out.flush()
        while args.reads is None or reads < args.reads:
            time.sleep(args.watch)
            after = snapshot(scan(args.pid, wasmtime=args.wasmtime, include_freed=args.all, decode=False))
            reads += 1
            for line in changes(before, after, time.time()):
                out.write(line + "\n")
            out.flush()
            before = after
    except KeyboardInterrupt:
        pass
    out.write(f"stopped after {reads} read{'s' * (reads != 1)}\n")
    return 0


def _save(args, result):
    """`scan --save DIR`: the capture written, its size said on stderr first."""
    from .capture import save_capture
    from .describe.capture import saved_text

    def before(total, count):
        print(f"vmctx-emu scan: {saved_text(args.save, result.capture, total, count)}", file=sys.stderr)

    save_capture(result, args.save, limit=args.save_limit << 20, before=before)


def cmd_where(args, out):
    from .describe.where import where_json, where_text
    from .live import scan

    source = args.pid if args.pid is not None else args.core
    progress = _ProgressLine(args) if _show_progress(args, out) else None
    try:
        result = scan(source, wasmtime=args.wasmtime, progress=progress, include_freed=args.all, exe=args.exe,
                      sysroot=args.sysroot, decode=False, where=args.addresses)
    finally:
        if progress:
            progress.clear()
    out.write((where_json(result) if args.json else where_text(result)) + "\n")
    return 0


def cmd_report(args, out):
    """One HTML page of a process, a core, dumps or a capture directory (`describe.report`)."""
    from .describe.report import report_chunks, report_from_dumps, report_from_scan

    given = [name for name, value in (("--pid", args.pid), ("--core", args.core), ("DUMP", args.dumps),
                                      ("--save-dir", args.save_dir)) if value]
    if len(given) != 1:
        raise ArgumentValueError("report draws one target: give one of --pid PID, --core FILE, DUMP... or --save-dir "
                                 "DIR" + (f" (got {', '.join(given)})" if given else ""))
    output = args.output
    if os.path.isdir(output):
        raise ArgumentValueError(f"-o {output}: is a directory; name the HTML file to write")
    if args.pid is not None or args.core is not None:
        from .live import scan

        source = args.pid if args.pid is not None else args.core
        progress = _ProgressLine(args) if _isatty(sys.stderr) else None
        try:
            result = scan(source, wasmtime=args.wasmtime, progress=progress, exe=args.exe, sysroot=args.sysroot,
                          include_freed=args.all, decode=False)
        finally:
            if progress:
                progress.clear()
        report = report_from_scan(result, ("--pid", args.pid) if args.pid is not None else ("--core", args.core))
    elif args.save_dir:
        from .describe.capture import read_manifest
        from .dumps.dump import load_dump

        manifest = read_manifest(args.save_dir)
        paths = [os.path.join(args.save_dir, c["file"]) for c in manifest["contexts"] if c.get("file")]
        report = report_from_dumps([(path, load_dump(path)) for path in paths],
                                   f"{manifest.get('source', 'a capture')}, captured "
                                   f"{manifest.get('captured_at', '')} into {args.save_dir}", manifest=manifest)
    else:
        from .dumps.dump import load_dump

        report = report_from_dumps([(path, load_dump(path, wasmtime=args.wasmtime)) for path in args.dumps],
                                   ", ".join(args.dumps))
    from . import __version__

    report.written_by = f"vmctx-emu {__version__}"
    from .dumps.files import write_file

    size = write_file(output, (piece.encode("utf-8", "backslashreplace")
                               for piece in report_chunks(report, max_sections=args.sections)))
    drawn = min(len(report.contexts), args.sections)
    out.write(f"wrote {output}: {len(report.contexts):,} context{'s' * (len(report.contexts) != 1)} "
              f"({drawn:,} drawn), {size:,} bytes\n")
    return 0


def _colour(out):
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org) or TERM is dumb."""
    return _isatty(out) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # no isatty, or closed
        return False


def _show_progress(args, out):
    """A progress line only for a person watching stderr, and never on the terminal the JSON goes to."""
    return _isatty(sys.stderr) and not (args.json and _isatty(out))


class _ProgressLine:
    """`scanning TARGET: NN% of M MiB writable memory` redrawn in place on stderr; `clear()` erases it."""

    def __init__(self, args):
        self.what = f"pid {args.pid}" if args.pid is not None else args.core
        self.shown = None

    def __call__(self, done, total):
        text = f"\rscanning {self.what}: {100 * done // max(total, 1):3d}% of {total >> 20} MiB writable memory"
        if text != self.shown:  # one write per percent, not per chunk
            sys.stderr.write(text)
            sys.stderr.flush()
            self.shown = text

    def clear(self):
        """Erase the line, if one was drawn, so what follows (an error, the output) starts a clean line."""
        if self.shown is not None:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = None


def cmd_versions(args, out):
    from .describe.layout import versions_text

    out.write(versions_text(LAYOUTS) + "\n")


def cmd_demo(args, out):
    if args.dump is not None:
        from .demo import write_sample_dumps

        for path in write_sample_dumps(args.dump):
            out.write(f"wrote {path} and {path}.json\n")
        return 0
    from .demo import run_demo

    run_demo(out)


class _VersionAction(argparse.Action):
    """`--version`: the package's version and the releases it knows, computed only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_text() + "\n")
        parser.exit(0)


def version_text():
    newest = LAYOUTS[-1]
    return (f"vmctx-emu {__version__}; Wasmtime layouts: {SEED.name} and v{LAYOUTS[1].first} - "
            f"v{newest.last} (newest known release: {newest.last})")


EPILOG = """\
Each command's options: vmctx-emu COMMAND --help.

exit status:
  0    success
  1    `diff`: the dumps differ; `decode --strict`: anomalies; `infer`: no layout fits
  2    bad input (one line on stderr; --traceback shows the Python traceback)
  141  the reader of the output went away (`vmctx-emu hexdump big.bin | head -1`)
"""


def _layout_options(p, layout, explicit):
    add_layout_options(p, layout)
    how = p.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    how.add_argument("--svg", action="store_true",
                     help="print an SVG picture instead of a table: each region as wide as its bytes, coloured by kind")


def _decode_options(p, layout, explicit):
    p.add_argument("dump", help="the raw context bytes (sidecar DUMP.json read if present)")
    add_layout_options(p, layout, for_dump=True)
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when there are anomalies")
    p.add_argument("--release", action="store_true",
                   help="a release build: no debug poison expected, so unset slots that are null are no anomaly "
                        "(default: the sidecar's build, else debug)")


def _hexdump_options(p, layout, explicit):
    p.add_argument("dump", help="the raw context bytes (sidecar DUMP.json read if present)")
    p.add_argument("-v", "--no-squeezing", action="store_true",
                   help="print every line, as hexdump -C -v (default: a run of identical lines of one region is "
                        "one line, then *)")
    add_layout_options(p, layout, for_dump=True)


def _diff_options(p, layout, explicit):
    p.add_argument("old", help="the earlier dump")
    p.add_argument("new", help="the later dump, of the same layout")
    add_layout_options(p, layout, for_dump=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


INFER_EPILOG = """\
The sidecar DUMP.json, when there is one: its ptr_size, byte_order, address and debug_assertions are
the defaults of --ptr-size, --byte-order, --address and --release; its release is the one searched
(--wasmtime searches another); its counts are a claim, not a constraint: every shape is searched and
the output says where the sidecar's stands (candidate N, past the listed ones, or not fitting).
--no-sidecar ignores it.

exit status: 0 some layout fits; 1 none fits; 2 bad input"""


def _infer_options(p, layout, explicit):
    p.add_argument("dump", help="the raw context bytes (sidecar DUMP.json read if present: see below)")
    p.add_argument("--wasmtime", default=None, metavar="VERSION",
                   help="check only this release's layout (default: the sidecar's, else every release); "
                        "the count options below are then that release's")
    p.add_argument("--ptr-size", type=_ptr_size, default=None, metavar="N|host",
                   help=f"pointer size in bytes (default: the sidecar's, else host = {int(HostPtr)})")
    p.add_argument("--byte-order", choices=("little", "big"), default=None,
                   help=f"byte order of the dump (default: the sidecar's, else this host's, {sys.byteorder})")
    p.add_argument("--address", type=_address, default=None,
                   help="the context's address, if known (every set vmctx must equal it; default: the sidecar's)")
    p.add_argument("--release", action="store_true",
                   help="the dump is of a release build (unset slots are zero, not INVALID_PTR; default: the "
                        "sidecar's debug_assertions, else a debug build)")
    p.add_argument("--no-sidecar", action="store_true",
                   help="ignore the dump's sidecar: search every release and shape with the options alone")
    p.add_argument("--limit", type=_u32("limit"), default=20, metavar="N",
                   help="candidate shapes to list per release (default 20; a u32)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    known = p.add_argument_group("known counts (narrow the candidates)")
    for name in (layout.count_names if explicit else all_count_names()):
        known.add_argument(f"--{count_option(name)}", dest=name, type=_u32(count_option(name)), default=None,
                           metavar="N", help=f"{name} is N")


def _scan_options(p, layout, explicit):
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=_pid, metavar="PID", help="a running process (read-only, never stopped)")
    target.add_argument("--core", metavar="FILE", help="a core file (ELF; gzip-compressed is read too)")
    p.add_argument("--wasmtime", default=None, metavar="VERSION",
                   help="decode as this release (default: the version string of the mapped Wasmtime image, else "
                        "the layouts its stored offsets fit)")
    p.add_argument("--all", action="store_true",
                   help="also list and decode the contexts found freed (by default they are only counted)")
    p.add_argument("--exe", metavar="FILE", default=None,
                   help="the target's executable, for a core that does not carry it (as gdb's `file`); checked "
                        "against the core's bytes")
    p.add_argument("--sysroot", metavar="DIR", default=None,
                   help="look for the target's files under DIR (as gdb's `set sysroot`); each checked against the "
                        "core's bytes")
    p.add_argument("--context", type=_address, default=None, metavar="ADDR",
                   help="only the context at ADDR, freed or not (an error when the scan finds none there)")
    p.add_argument("--records", action="store_true",
                   help="print each context's evidence and every field's record (the full table), not the summary")
    p.add_argument("--watch", type=_seconds, default=None, metavar="SECONDS",
                   help="with --pid: print the summary, then scan again every SECONDS and print only what changed "
                        "(a flag word, a store entering or leaving wasm, a new or freed context) until Ctrl-C")
    p.add_argument("--reads", type=_positive, default=None, metavar="N",
                   help="with --watch: stop after N reads (default: until Ctrl-C)")
    p.add_argument("--save", metavar="DIR", default=None,
                   help="also write every context listed as a dump pair, the structures its pointers reach and a "
                        "manifest into DIR (new or empty; written as one unit)")
    p.add_argument("--save-limit", metavar="MIB", type=_u32("save-limit"), default=64,
                   help="refuse to --save more than MIB MiB (default 64; 2,000 contexts take about 3 MB)")
    p.add_argument("--json", action="store_true", help="print one JSON object (records and summary) instead of text")


def _where_options(p, layout, explicit):
    p.add_argument("addresses", nargs="+", type=_address, metavar="ADDR",
                   help="an address (a PC from a backtrace, a data pointer): 0x7f..., or decimal")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=_pid, metavar="PID", help="a running process (read-only, never stopped)")
    target.add_argument("--core", metavar="FILE", help="a core file (ELF; gzip-compressed is read too)")
    p.add_argument("--wasmtime", default=None, metavar="VERSION", help="decode as this release (as for scan)")
    p.add_argument("--all", action="store_true", help="also look among the contexts found freed")
    p.add_argument("--exe", metavar="FILE", default=None, help="the target's executable, for a core (as for scan)")
    p.add_argument("--sysroot", metavar="DIR", default=None, help="look for the target's files under DIR (as for scan)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _report_options(p, layout, explicit):
    p.add_argument("dumps", nargs="*", metavar="DUMP", help="dumps to draw (each with its .json sidecar)")
    p.add_argument("--pid", type=_pid, metavar="PID", help="a running process (read-only, never stopped)")
    p.add_argument("--core", metavar="FILE", help="a core file (ELF; gzip-compressed is read too)")
    p.add_argument("--save-dir", metavar="DIR", default=None, help="a directory `scan --save DIR` wrote")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the HTML file to write")
    p.add_argument("--sections", type=_positive, default=200, metavar="N",
                   help="draw the first N contexts in full; fold the rest by what they show (default 200)")
    p.add_argument("--wasmtime", default=None, metavar="VERSION", help="decode as this release (as for scan)")
    p.add_argument("--all", action="store_true", help="also draw the contexts found freed (as for scan)")
    p.add_argument("--exe", metavar="FILE", default=None, help="the target's executable, for a core (as for scan)")
    p.add_argument("--sysroot", metavar="DIR", default=None, help="look for the target's files under DIR (as for scan)")


def _demo_options(p, layout, explicit):
    p.add_argument("--dump", metavar="DIR", default=None,
                   help="instead, write the demo's dumps into DIR: ctx.bin (as initialized), before.bin "
                        "(a few slots set), after.bin (later), each with its .json sidecar")


# name: (help, epilog, its options); each runs `cmd_NAME(args, out)`.
COMMANDS = {
    "layout": ("print the field layout for a pointer size and shape", None, _layout_options),
    "decode": ("decode a dump into fields, values and anomalies",
               "exit status: 0; 1 with --strict when there are anomalies; 2 bad input", _decode_options),
    "hexdump": ("hexdump -C style lines with field names in the margin", None, _hexdump_options),
    "diff": ("the fields that differ between two dumps of one layout",
             "exit status, as diff(1): 0 the dumps decode the same; 1 they differ; 2 bad input",
             _diff_options),
    "infer": ("release layouts and component shapes that fit a dump, most plausible first", INFER_EPILOG,
              _infer_options),
    "scan": ("find and decode every component context in a live Wasmtime process or core", None,
             _scan_options),
    "where": ("which context, field, trampoline or JIT region an address belongs to, in a live process or core",
              "each address: the mapping and symbol holding it, the context it is inside, the context fields "
              "holding it, and for code the nearest entry point a context knows", _where_options),
    "report": ("one self-contained HTML page: each context's layout map and flag words, and the pointer graph",
               "the page has no external resources or scripts; open it in any browser, or attach it to a bug report",
               _report_options),
    "versions": ("the supported Wasmtime releases and their count options", None, None),
    "demo": ("show the package at work on built-in defaults", None, _demo_options),
}


def build_parser(layout=SEED, explicit=False, commands=None):
    """The CLI parser; the count options are those of `layout` (chosen with --wasmtime: `explicit`).

    Every command is listed, but only those in `commands` (default: all) get their options: the
    one command a command line runs is all its start-up needs to build. `parser.commands` maps
    each command to its parser.
    """
    parser = Parser(
        prog="vmctx-emu",
        description="Emulate and inspect Wasmtime's VMComponentContext memory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.layout = layout
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback on errors (accepted anywhere on the line)")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the package version and the newest Wasmtime release it knows")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.commands = {}
    for name, (help, epilog, options) in COMMANDS.items():
        p = parser.commands[name] = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                                   epilog=epilog)
        if options is not None and (commands is None or name in commands):
            options(p, layout, explicit)
    return parser


def requested_release(argv):
    """The one `--wasmtime` value in `argv` (None if absent), before the full parse needs its count options.

    Given twice with different values is an error, not a silent pick.
    """
    values = []
    for i, word in enumerate(argv):
        if word == "--":
            break
        if word == "--wasmtime" and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif word.startswith("--wasmtime="):
            values.append(word.split("=", 1)[1])
    if len({resolve_release(v).layout.name for v in values}) > 1 or len(set(values)) > 1:
        raise UnknownReleaseError(f"given more than once with different values: {', '.join(values)}")
    return values[0] if values else None


def take_traceback_flag(argv):
    """(argv without `--traceback`, whether it was given): the flag is accepted before or after the command."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [word for word in argv[:end] if word != "--traceback"] + argv[end:]
    return rest, len(rest) != len(argv)


# 128 + SIGPIPE: what a shell reports for a tool the kernel stopped on a closed pipe (`cat big | head -1`).
EXIT_BROKEN_PIPE = 141


def _quiet_stdout():
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (captured): nothing to flush
        pass


LOSSLESS = "vmctx-emu-lossless"  # the error handler stdout and stderr write names with


def _lossless(error):
    """A codec error handler: a byte os.fsdecode kept as a surrogate escape is written back as that byte; any
    other character the stream's encoding lacks as a backslash escape. Never an exception."""
    bad = error.object[error.start:error.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in bad):
        return bytes(ord(c) - 0xDC00 for c in bad), error.end
    return codecs.backslashreplace_errors(error)


def _lossless_names():
    """File names the target maps need not be UTF-8 (os gives them as surrogate escapes): stdout and stderr
    write them back as the bytes they were, whatever the locale, instead of failing on them."""
    try:
        codecs.lookup_error(LOSSLESS)
    except LookupError:
        codecs.register_error(LOSSLESS, _lossless)
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) in ("strict", "backslashreplace") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=LOSSLESS)
            except (ValueError, OSError):  # closed or detached: nothing to write anyway
                pass


def main(argv=None, out=None):
    """Run the CLI; returns the exit status (0; 1 as each command documents; 2 bad input; 141 broken pipe)."""
    out = sys.stdout if out is None else out
    _lossless_names()
    # numpy's wheels bundle OpenBLAS, whose thread pool (one thread per CPU) starts spinning as
    # numpy is imported: about 90 ms of CPU per command on 2 CPUs, for nothing (no command does
    # linear algebra). One thread, unless the user set it; before any command imports numpy.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv, traceback = take_traceback_flag(sys.argv[1:] if argv is None else list(argv))
    try:
        release = requested_release(argv)
        resolution = resolve_release(release or sidecar_release(argv) or SEED)
    except VMCtxEmuError as e:
        if traceback:
            raise
        print(f"vmctx-emu: error: argument --wasmtime: {_one_line(e)}", file=sys.stderr)
        return 2
    layout = resolution.layout
    explicit = release is not None
    # The command is the first word that is not an option (the top level's options take no value).
    parser = build_parser(layout, explicit, commands=[next((w for w in argv if not w.startswith("-")), None)])
    first = argv[0].split("=", 1)[0] if argv else ""
    if first.startswith("-") and first not in option_strings(parser)[None]:
        commands = commands_taking(layout, first, explicit)
        if commands:
            print(f"vmctx-emu: error: {first} is an option of {', '.join(commands)}: "
                  f"put it after the COMMAND (vmctx-emu COMMAND {first} ...)", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    if args.command is None:
        sys.stderr.write(parser.format_help() + "vmctx-emu: error: no COMMAND given; choose one of the above\n")
        return 2
    args.layout = layout
    if resolution.how == "newer" and args.command != "scan":
        print(f"vmctx-emu {args.command}: error: argument --wasmtime: {resolution.version} is newer than the table "
              f"(newest {resolution.release}); only scan can use it, where the runtime's stored offsets check the "
              "layout", file=sys.stderr)
        return 2
    try:
        status = globals()[f"cmd_{args.command}"](args, out)  # COMMANDS' NAME runs cmd_NAME
        out.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat(1) does.
        if out is sys.stdout:
            _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        if traceback:
            raise
        print(f"vmctx-emu {args.command}: interrupted", file=sys.stderr)
        return 130
    except (VMCtxEmuError, OSError, MemoryError) as e:
        if traceback:
            raise
        print(f"vmctx-emu {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    return status or 0


def _one_line(error):
    """The error's message on one line: an OSError as "FILE: reason", a MemoryError named as such."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, MemoryError):
        return f"out of memory{': ' + str(error) if str(error) else ''}"
    return " ".join(_phrase(error).split()) or type(error).__name__


def _phrase(error):
    """A library error in the command line's words where one of its options is the way out (the library's
    message names Python arguments instead); any other error as it is."""
    if isinstance(error, TooManyCandidatesError) and error.asks:
        way_out = (f"give it (--{count_option(error.count_name)} N)" if error.count_name else
                   "give the counts you know (the count options, e.g. --instances N --lowerings N) or --wasmtime")
        if error.limit is not None:
            way_out = f"list fewer (--limit N, not {error.limit:,}) or {way_out}"

        return f"{error.reason}; {way_out}"
    if isinstance(error, DumpError) and error.missing:
        return f"{error.reason}: pass them (CLI: --ptr-size and the count options)"
    if isinstance(error, SidecarConflictError):
        return _conflict(error)
    if isinstance(error, BadMagicError) and error.path is not None:
        return f"{error.reason} (--force reads it anyway)"
    if isinstance(error, UnknownReleaseError) and error.newest is not None:
        return f"{error}; `vmctx-emu versions` lists every release"
    return str(error)


def _conflict(error):
    """A layout option that contradicts the dump's sidecar, in the options' words."""
    if error.argument == "debug_assertions":
        given, recorded = "--release", "a debug build (debug_assertions true)"
    else:
        option = {"wasmtime": "--wasmtime", "ptr": "--ptr-size", "byte_order": "--byte-order"}.get(
            error.argument) or f"--{count_option(error.argument)}"
        recorded_as = {"ptr": "ptr_size"}.get(error.argument, error.argument)
        given, recorded = f"{option} {error.given}", f"{recorded_as} {error.recorded}"
    return (f"{error.path}: {given} contradicts its sidecar {error.sidecar}, which records {recorded}: leave the "
            "option out (the sidecar answers it), or --force to read the dump as the options say")


def sidecar_release(argv):
    """The release the sidecar of the dump a `decode`, `hexdump` or `diff` command line reads records (None:
    another command, no such dump or sidecar, or one that cannot be read: the command says why later), so
    that command's count options are that release's without --wasmtime."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    flags = {"--json", "--strict", "--force", "--release", "-h", "--help"}
    command, path, skip = None, None, False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = command is not None and word not in flags and "=" not in word
        elif command is None:
            command = word
        else:
            path = word
            break
    if command not in ("decode", "hexdump", "diff") or path is None:
        return None
    try:
        from .dumps.sidecar import read_sidecar

        meta = read_sidecar(path)
    except (VMCtxEmuError, OSError, ValueError):
        return None
    return None if meta is None else meta.get("wasmtime")


if __name__ == "__main__":
    sys.exit(main())
