"""`vmctx-emu`: a thin command line over the package; all work is done by the library."""

import argparse
import sys

from .component import COUNT_NAMES, Component, check_u32
from .errors import VMCtxEmuError
from .offsets import VMComponentOffsets
from .ptr import HostPtr, PtrSize
from .render import layout_json, layout_table

__all__ = ["main", "SAMPLE_COMPONENT"]

# The shape `make demo` shows: a little of everything.
SAMPLE_COMPONENT = Component(
    num_lowerings=3,
    num_runtime_memories=1,
    num_runtime_reallocs=1,
    num_runtime_post_returns=1,
    num_runtime_component_instances=2,
    num_always_trap=1,
)

# CLI option → Rust count name, in the Rust struct's order.
COUNT_OPTIONS = {
    "lowerings": "num_lowerings",
    "memories": "num_runtime_memories",
    "reallocs": "num_runtime_reallocs",
    "post-returns": "num_runtime_post_returns",
    "instances": "num_runtime_component_instances",
    "always-trap": "num_always_trap",
}
assert sorted(COUNT_OPTIONS.values()) == sorted(COUNT_NAMES)


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, no usage dump."""

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


def add_layout_options(parser):
    """The pointer size and the six counts, shared by every command that needs a layout."""
    group = parser.add_argument_group("layout")
    group.add_argument(
        "--ptr-size",
        type=_ptr_size,
        default=HostPtr,
        metavar="N|host",
        help=f"pointer size in bytes (default: host = {int(HostPtr)})",
    )
    for option, rust_name in COUNT_OPTIONS.items():
        group.add_argument(
            f"--{option}",
            dest=rust_name,
            type=_u32(option),
            default=0,
            metavar="N",
            help=f"{rust_name} (u32, default 0)",
        )


def offsets_from_args(args):
    component = Component(**{name: getattr(args, name) for name in COUNT_NAMES})
    return VMComponentOffsets(args.ptr_size, component)


def cmd_layout(args, out):
    offsets = offsets_from_args(args)
    out.write((layout_json(offsets) if args.json else layout_table(offsets)) + "\n")


def cmd_demo(args, out):
    offsets = VMComponentOffsets(HostPtr, SAMPLE_COMPONENT)
    out.write(f"Layout of a sample component on this host ({SAMPLE_COMPONENT}):\n\n")
    out.write(layout_table(offsets) + "\n")


def build_parser():
    parser = _Parser(
        prog="vmctx-emu",
        description="Emulate and inspect Wasmtime's VMComponentContext memory.",
    )
    parser.add_argument("--traceback", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("layout", help="print the field layout for a pointer size and shape")
    add_layout_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_layout)

    p = sub.add_parser("demo", help="show the package at work on built-in defaults")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None, out=None):
    """Run the CLI; returns the exit status (0, or 2 for bad input)."""
    out = sys.stdout if out is None else out
    args = build_parser().parse_args(argv)
    try:
        args.func(args, out)
    except VMCtxEmuError as e:
        if args.traceback:
            raise
        print(f"vmctx-emu {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
