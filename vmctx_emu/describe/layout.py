"""A layout (`VMComponentOffsets`) as a pahole-style table and as JSON, and the releases' layouts as a
list (`versions`); no layout arithmetic lives here."""

from .schema import SCHEMA_VERSION

__all__ = ["layout_dict", "layout_json", "layout_table", "versions_text"]

VERSIONS_WIDTH = 80


def layout_dict(offsets):
    """The layout as plain data: offsets and sizes as ints, counts under their Rust names."""
    return {
        "schema_version": SCHEMA_VERSION,
        "struct": "VMComponentContext",
        "layout": offsets.LAYOUT.id,
        "wasmtime": offsets.LAYOUT.range_text,
        "ptr_size": offsets.pointer_size(),
        "counts": {name: getattr(offsets, name) for name in offsets.COUNT_NAMES},
        "size_of_vmctx": offsets.size_of_vmctx(),
        "regions": [r.to_dict() for r in offsets.regions()],
    }


def layout_json(offsets):
    import json  # here: `layout` without --json starts without it

    return json.dumps(layout_dict(offsets), indent=2)


def _hole_line(nbytes, what):
    return f"/* XXX {nbytes:2d}-byte {what}".ljust(24) + " */"


def layout_table(offsets):
    """A `ptype /o` / pahole-style table: offset, size, type and field[count], holes marked XXX."""
    lines = [
        "/* offset      |    size */  type = struct VMComponentContext {"
        f"  /* {offsets.LAYOUT.name}, ptr_size={offsets.pointer_size()} */"
    ]
    for r in offsets.regions():
        if r.padding_before:
            lines.append(_hole_line(r.padding_before, "hole"))
        decl = r.name if r.count_name is None else f"{r.name}[{r.count}]"
        note = "" if r.count_name is None else f"  /* {r.count_name}, {r.elem_size} bytes each */"
        lines.append(f"/* {r.offset:6d}      | {r.size:7d} */    {r.elem_type} {decl};{note}")
    lines.append("")
    lines.append(f"                               /* total size (bytes): {offsets.size_of_vmctx():5d} */")
    lines.append("                             }")
    return "\n".join(lines)


def versions_text(layouts):
    """One block per layout, wrapped to 80 columns: id and releases, what changes, its count options."""
    import textwrap

    from .options import count_option

    indent = " " * 6
    lines = []
    for layout in layouts:
        lines.append(f"{layout.id:<5} {layout.range_text}")
        for text in (layout.changes, "counts: " + " ".join(f"--{count_option(n)}" for n in layout.count_names)):
            lines.append(textwrap.fill(text, VERSIONS_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                                       break_long_words=False, break_on_hyphens=False))
    lines.append("Choose one with --wasmtime VERSION: 0.40.1, v21.0.2, 21 (the newest 21.x), seed.")
    return "\n".join(lines)
