"""`vmctx-emu`: a thin command line over the package; all work is done by the library."""

import argparse
import json
import os
import sys

from .describe import decoded_json, decoded_table, diff_json, diff_table, hexdump_lines
from .dumps.decode import decode, padding_differences
from .dumps.dump import DumpError, load_dump, read_dump_bytes
from .dumps.infer import infer_releases
from .errors import UnknownReleaseError, VMCtxEmuError
from .layouts.component import check_u32, count_option
from .layouts.ptr import HostPtr, PtrSize
from .layouts.releases import COUNT_ORDER, LAYOUTS, SEED, wasmtime_layout
from .render import layout_json, layout_table

__all__ = ["main", "add_layout_options", "count_option", "count_options"]


def count_options(layout=SEED):
    """CLI option -> Rust count name for `layout`, in the Rust struct's order."""
    return {count_option(name): name for name in layout.count_names}


# Every count some release has: infer without --wasmtime takes any of them.
ALL_COUNT_NAMES = tuple(n for n in COUNT_ORDER if any(n in layout.count_names for layout in LAYOUTS))


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, no usage dump; no abbreviated options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def _pid(text):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a process id, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a process id is positive, got {value}")
    return value


def _address(text):
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int such as 0x7f0012340000, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"an address cannot be negative, got {text}")
    return value


def add_layout_options(parser, layout=SEED, for_dump=False):
    """The release, pointer size and that release's counts, for every command that needs a layout.

    For a dump they default to None: only what is given overrides the sidecar.
    """
    group = parser.add_argument_group(
        "layout" + (" (overrides the dump's sidecar; unset counts are 0 without one)" if for_dump else "")
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
                           help="read the dump even if its magic is wrong (reported as an anomaly)")


def _counts(args):
    names = count_options(args.layout).values()
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def load_from_args(args, path):
    return load_dump(path, ptr=args.ptr_size, byte_order=args.byte_order, counts=_counts(args),
                     address=args.address, check_magic=not args.force, wasmtime=args.wasmtime)


def offsets_from_args(args):
    return args.layout.offsets(args.ptr_size, **_counts(args))


def cmd_layout(args, out):
    offsets = offsets_from_args(args)
    out.write((layout_json(offsets) if args.json else layout_table(offsets)) + "\n")


def cmd_decode(args, out):
    decoded = decode(load_from_args(args, args.dump))
    if args.json:
        out.write(decoded_json(decoded) + "\n")
        return
    from .describe import decoded_table_chunks

    # Streamed: a large dump never becomes one string; bytes straight to a binary stream if there is one.
    binary = getattr(out, "buffer", None)
    if binary is not None:
        out.flush()
    for chunk in decoded_table_chunks(decoded, binary=binary is not None):
        (binary or out).write(chunk)


def cmd_hexdump(args, out):
    for line in hexdump_lines(load_from_args(args, args.dump)):
        out.write(line + "\n")


def cmd_diff(args, out):
    old, new = load_from_args(args, args.old), load_from_args(args, args.new)
    if old.offsets.regions() != new.offsets.regions():
        raise DumpError(
            f"{args.old} and {args.new} have different layouts "
            f"({old.offsets.size_of_vmctx()} vs {new.offsets.size_of_vmctx()} bytes, "
            f"{old.offsets.component} vs {new.offsets.component}): give the same layout options"
        )
    a, b = decode(old), decode(new)
    padding = padding_differences(a, b)
    out.write((diff_json(a, b, padding) if args.json else diff_table(a, b, padding)) + "\n")


def cmd_infer(args, out):
    data = read_dump_bytes(args.dump)
    only = None if args.wasmtime is None else [args.layout]
    counts = {name: getattr(args, name) for name in _infer_count_names(args) if getattr(args, name) is not None}
    results = infer_releases(data, args.ptr_size, args.byte_order, layouts=only, address=args.address,
                             counts=counts, debug_assertions=not args.release, limit=args.limit)
    if args.json:
        doc = {"schema_version": 2, "size": len(data), "ptr_size": int(args.ptr_size),
               "byte_order": args.byte_order, "debug_assertions": not args.release,
               "releases": [{"layout": r.layout.id, "releases": r.range_text, "candidates": r.count,
                             "listed": len(r.candidates), "notes": r.notes,
                             "shapes": [{"counts": dict(c.counts), "cost": round(c.cost, 3)}
                                        for c in r.candidates]} for r in results]}
        out.write(json.dumps(doc, indent=1) + "\n")
        return 0 if results else 1
    build = "release-build" if args.release else "debug-initialized"
    out.write(f"{len(data)} bytes, ptr_size={int(args.ptr_size)}, {args.byte_order}-endian, {build}: ")
    if not results:
        out.write("no release layout has a shape that fits\n")
        return 1
    out.write(f"1 release layout fits\n" if len(results) == 1 else f"{len(results)} release layouts fit\n")
    for r in results:
        verdict = "unambiguous" if r.count == 1 else f"ambiguous: {r.count:,} candidate shapes, most plausible first"
        out.write(f"{r.layout.id} ({r.range_text}): {verdict}\n")
        for note in r.notes:
            out.write(f"  note: {note}\n")
        for c in r.candidates:
            out.write("  " + " ".join(f"--{count_option(n)} {v}" for n, v in c.counts) + "\n")
        if r.count > len(r.candidates):
            out.write(f"  ... {r.count - len(r.candidates):,} more (raise --limit or give known "
                      "counts to narrow them)\n")
    return 0


def _infer_count_names(args):
    return args.layout.count_names if args.wasmtime is not None else ALL_COUNT_NAMES


def cmd_scan(args, out):
    from .describe import decoded_table
    from .live import scan

    source = args.pid if args.pid is not None else args.core
    progress = _ProgressLine(args) if _show_progress(args, out) else None
    try:
        result = scan(source, wasmtime=args.wasmtime, progress=progress)
    finally:
        if progress:
            progress.clear()
    if args.json:
        out.write(json.dumps(result.to_dict(), indent=1) + "\n")
        return 0
    out.write(f"{result.source}: Wasmtime {result.wasmtime} ({result.wasmtime_from}), "
              f"{len(result.contexts)} component context{'s' * (len(result.contexts) != 1)}\n")
    for note in result.notes:
        out.write(f"note: {note}\n")
    for ctx in result.contexts:
        out.write("\n")
        if ctx.decoded is not None:
            out.write(f"shape: {ctx.shape_from}\n")
            out.write(decoded_table(ctx.decoded, ctx.points_to) + "\n")
        else:
            out.write(f"VMComponentContext at {ctx.address:#x} ({ctx.layout.name})\n")
        for note in ctx.notes:
            out.write(f"  note: {note}\n")
    return 0


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
    rows = [("id", "releases", "what changes on entry", "counts")]
    for layout in LAYOUTS:
        rows.append((layout.id, layout.range_text, layout.changes,
                     " ".join(f"--{count_option(n)}" for n in layout.count_names)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3] + "\n")


def cmd_demo(args, out):
    from .demo import run_demo

    run_demo(out)


def build_parser(layout=SEED, explicit=False):
    """The CLI parser; the count options are those of `layout` (chosen with --wasmtime: `explicit`)."""
    parser = _Parser(
        prog="vmctx-emu",
        description="Emulate and inspect Wasmtime's VMComponentContext memory.",
    )
    parser.add_argument("--traceback", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("layout", help="print the field layout for a pointer size and shape")
    add_layout_options(p, layout)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_layout)

    p = sub.add_parser("decode", help="decode a dump into fields, values and anomalies")
    p.add_argument("dump", help="the raw context bytes (sidecar DUMP.json read if present)")
    add_layout_options(p, layout, for_dump=True)
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("hexdump", help="hexdump -C style lines with field names in the margin")
    p.add_argument("dump", help="the raw context bytes (sidecar DUMP.json read if present)")
    add_layout_options(p, layout, for_dump=True)
    p.set_defaults(func=cmd_hexdump)

    p = sub.add_parser("diff", help="the fields that differ between two dumps of one layout")
    p.add_argument("old", help="the earlier dump")
    p.add_argument("new", help="the later dump, of the same layout")
    add_layout_options(p, layout, for_dump=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("infer", help="release layouts and component shapes that fit a dump, most plausible first")
    p.add_argument("dump", help="the raw context bytes")
    p.add_argument("--wasmtime", default=None, metavar="VERSION",
                   help="check only this release's layout (default: every release); "
                        "the count options below are then that release's")
    p.add_argument("--ptr-size", type=_ptr_size, required=True, metavar="N|host", help="pointer size in bytes")
    p.add_argument("--byte-order", choices=("little", "big"), default=sys.byteorder,
                   help=f"default: this host's ({sys.byteorder})")
    p.add_argument("--address", type=_address, default=None,
                   help="the context's address, if known (every set vmctx must equal it)")
    p.add_argument("--release", action="store_true",
                   help="the dump is of a release build (unset slots are zero, not INVALID_PTR)")
    p.add_argument("--limit", type=_u32("limit"), default=20, help="candidate shapes to list per release (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    known = p.add_argument_group("known counts (narrow the candidates)")
    for name in (layout.count_names if explicit else ALL_COUNT_NAMES):
        known.add_argument(f"--{count_option(name)}", dest=name, type=_u32(count_option(name)), default=None,
                           metavar="N", help=f"{name} is N")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("scan", help="find and decode every component context in a live Wasmtime process or core")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=_pid, metavar="PID", help="a running process (read-only, never stopped)")
    target.add_argument("--core", metavar="FILE", help="a core file (ELF; gzip-compressed is read too)")
    p.add_argument("--wasmtime", default=None, metavar="VERSION",
                   help="decode as this release (default: the version string of the mapped Wasmtime)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("versions", help="the supported Wasmtime releases and their count options")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("demo", help="show the package at work on built-in defaults")
    p.set_defaults(func=cmd_demo)
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
    if len({wasmtime_layout(v).name for v in values}) > 1 or len(set(values)) > 1:
        raise UnknownReleaseError(f"given more than once with different values: {', '.join(values)}")
    return values[0] if values else None


def main(argv=None, out=None):
    """Run the CLI; returns the exit status (0; 1 when `infer` finds nothing; 2 for bad input)."""
    out = sys.stdout if out is None else out
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        release = requested_release(argv)
        layout = wasmtime_layout(release or "seed")
    except VMCtxEmuError as e:
        print(f"vmctx-emu: error: argument --wasmtime: {e}", file=sys.stderr)
        return 2
    args = build_parser(layout, explicit=release is not None).parse_args(argv)
    args.layout = layout
    try:
        status = args.func(args, out)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat(1) does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except VMCtxEmuError as e:
        if args.traceback:
            raise
        print(f"vmctx-emu {args.command}: error: {e}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
