"""`hexdump -C` lines of a context, with the names of the fields each line holds in the right margin."""

import bisect

__all__ = ["hexdump_lines", "hexdump_chunks"]


def _spans(regions):
    """Every labelled byte range in offset order: (start, end, region, is_hole); they do not overlap."""
    spans = []
    for r in regions:
        if r.padding_before:
            spans.append((r.offset - r.padding_before, r.offset, r, True))
        if r.size:
            spans.append((r.offset, r.end, r, False))
    return spans


def _line_labels(spans, ends, start, stop):
    """(margin text, region names) of the bytes [start, stop): the names decide folding, not the indices."""
    labels, names = [], []
    i = bisect.bisect_right(ends, start)  # the first span ending after `start`
    while i < len(spans) and spans[i][0] < stop:
        _, _, r, hole = spans[i]
        i += 1
        if hole:
            labels.append("(hole)")
            names.append("(hole)")
            continue
        names.append(r.name)
        if r.count_name is None:
            labels.append(r.name)
            continue
        first = max(0, (start - r.offset) // r.elem_size)
        last = min(r.count - 1, (stop - 1 - r.offset) // r.elem_size)
        labels.append(f"{r.name}[{first}]" if first == last else f"{r.name}[{first}..{last}]")
    return ", ".join(labels), tuple(names)


# hexdump -C's text column: printable ASCII as itself, every other byte as ".".
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))


def hexdump_lines(ctx):
    """`hexdump -C` lines, repeated lines folded into `*`, field names in the right margin."""
    raw = bytes(ctx.memory)
    spans = _spans(ctx.offsets.regions())
    ends = [end for _, end, _, _ in spans]
    previous = None
    folded = False
    for start in range(0, len(raw), 16):
        chunk = raw[start:start + 16]
        labels, names = _line_labels(spans, ends, start, start + len(chunk))
        # Fold like hexdump -C, but never across a change of region, so
        # every region's first line keeps its name in the margin.
        key = (chunk, names)
        if key == previous and len(chunk) == 16:
            if not folded:
                yield "*"
                folded = True
            continue
        previous, folded = key, False
        text = chunk.translate(_PRINTABLE).decode("ascii")
        yield f"{start:08x}  {chunk[:8].hex(' '):<23}  {chunk[8:].hex(' '):<23}  |{text}|".ljust(78) + f"  {labels}"
    yield f"{len(raw):08x}"


def hexdump_chunks(ctx, lines=1 << 14, binary=False):
    """Every line of `hexdump_lines` with its newline, in pieces of about `lines` lines, for streaming."""
    out = []
    for line in hexdump_lines(ctx):
        out.append(line)
        if len(out) == lines:
            piece = "\n".join(out) + "\n"
            yield piece.encode("ascii") if binary else piece
            out = []
    piece = "\n".join(out) + "\n"
    yield piece.encode("ascii") if binary else piece
