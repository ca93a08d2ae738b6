"""`hexdump -C` lines of a context, with the names of the fields each line holds in the right margin.

Lines wholly inside one array region (nearly all of a large context) are rendered a block at a
time as a byte matrix (`_array_lines`); the few others (headers, holes, region edges, a short
last line) line by line. Repeated lines fold into `*` as `hexdump -C` folds them, but never
across a change of region, so every region's first line keeps its name in the margin; with
`squeeze=False` (`hexdump -C -v`) every line is printed.
"""

import bisect

import numpy as np

from .textgrid import dec_digits, decimal_widths, hex_digits, hex_pairs

__all__ = ["hexdump_lines", "hexdump_chunks", "MIN_LINES"]

MIN_LINES = 64  # array runs shorter than this are rendered line by line (0: every run as a matrix)
# hexdump -C's text column: printable ASCII as itself, every other byte as ".".
_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
_LINE_WIDTH = 78  # offset, both hex halves and the text column, padded; the margin follows
_FILLER = 0  # a byte no line holds: cells of the matrix that are not text, dropped before output


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


def hexdump_lines(ctx, squeeze=True):
    """`hexdump -C` lines, repeated lines folded into `*` (every line with `squeeze` False, as `hexdump -v`),
    field names in the right margin."""
    for chunk in hexdump_chunks(ctx, squeeze=squeeze):
        yield from chunk.splitlines()


def hexdump_chunks(ctx, lines=1 << 14, binary=False, squeeze=True):
    """Every line of `hexdump_lines` with its newline, in pieces of about `lines` lines, for streaming.

    With `binary` the pieces are ASCII bytes-like objects; with `squeeze` False no line is folded.
    """
    data = np.frombuffer(ctx.memory, np.uint8)
    size = len(data)
    count = (size + 15) // 16
    spans = _spans(ctx.offsets.regions())
    ends = [end for _, end, _, _ in spans]
    # Runs of lines wholly inside one array region (so they name it alone); the rest, line by line.
    runs = []
    for start, end, r, hole in spans:
        first, stop = -(-start // 16), min(end, size) // 16
        if not hole and r.count_name is not None and stop - first >= max(1, MIN_LINES) and size <= 1 << 32:
            runs.append((first, stop, r))
    names = {}  # names tuple -> id; a line's names decide folding
    ids = np.empty(count, np.int32)
    single = []  # (first line, stop line) of each stretch rendered line by line
    at = 0
    for first, stop, r in runs + [(count, count, None)]:
        if first > at:
            single.append((at, first))
        if r is not None:
            ids[first:stop] = names.setdefault((r.name,), len(names))
        at = stop
    labels = {}
    for a, b in single:
        for line in range(a, b):
            labels[line] = _line_labels(spans, ends, 16 * line, min(16 * line + 16, size))
            ids[line] = names.setdefault(labels[line][1], len(names))
    fold, star = _folds(data, ids, size) if squeeze else (np.zeros(count, bool), np.zeros(count, bool))
    pieces = sorted([(a, b, None) for a, b in single] + runs, key=lambda piece: piece[0])
    out = (lambda text: text.encode("ascii")) if binary else (lambda text: text)
    for a, b, r in pieces:
        if r is None:
            yield out(_single_lines(data, a, b, labels, fold, star))
            continue
        for start in range(a, b, lines):
            mat = _array_lines(data, start, min(b, start + lines), r, fold, star)
            yield mat.data if binary else mat.tobytes().decode("ascii")
    yield out(f"{size:08x}\n")


def _folds(data, ids, size):
    """(fold, star) per line: a full line with the bytes and names of the one before is folded; the
    first of each folded stretch prints `*`."""
    count = len(ids)
    full = size // 16
    fold = np.zeros(count, bool)
    if full > 1:
        words = data[:16 * full].view(np.uint64).reshape(full, 2)
        fold[1:full] = (words[1:] == words[:-1]).all(axis=1) & (ids[1:full] == ids[:full - 1])
    star = fold.copy()
    star[1:] &= ~fold[:-1]
    return fold, star


def _single_lines(data, a, b, labels, fold, star):
    """Lines a:b one by one (their labels worked out already)."""
    out = []
    for line in range(a, b):
        if fold[line]:
            if star[line]:
                out.append("*\n")
            continue
        start = 16 * line
        chunk = data[start:start + 16].tobytes()
        text = chunk.translate(_PRINTABLE).decode("ascii")
        out.append(f"{start:08x}  {chunk[:8].hex(' '):<23}  {chunk[8:].hex(' '):<23}  |{text}|".ljust(_LINE_WIDTH)
                   + f"  {labels[line][0]}\n")
    return "".join(out)


def _array_lines(data, a, b, region, fold, star):
    """Full lines a:b inside one array region as ASCII bytes (1-d): a fixed-width matrix, one row per
    line, whose unused cells (a label's missing digits, folded lines) are dropped."""
    m = b - a
    rows = data[16 * a:16 * b].reshape(m, 16)
    starts = np.arange(16 * a, 16 * b, 16, dtype=np.int64)
    first = (starts - region.offset) // region.elem_size
    last = (starts + 15 - region.offset) // region.elem_size
    digits = len(str(int(last[-1])))
    name = 80  # the margin: two spaces after the text column, then the region's name
    open_at = name + len(region.name)
    first_at = open_at + 1
    dots_at = first_at + digits
    last_at = dots_at + 2
    width = last_at + digits + 2  # "]" and the newline
    template = np.frombuffer(
        (" " * 60 + "|" + " " * 16 + "|  " + region.name + "[" + "0" * digits + ".." + "0" * digits + "]\n").encode(),
        np.uint8)
    mat = np.empty((m, width), np.uint8)
    mat[:] = template
    mat[:, 0:8] = hex_digits(starts, 8)
    pairs = hex_pairs()[rows]  # (m, 16, 2)
    mat[:, 10:34].reshape(m, 8, 3)[:, :, :2] = pairs[:, :8]
    mat[:, 35:59].reshape(m, 8, 3)[:, :, :2] = pairs[:, 8:]
    mat[:, 61:77] = np.frombuffer(_PRINTABLE, np.uint8)[rows]
    _put_number(mat, first_at, digits, first)
    _put_number(mat, last_at, digits, last)
    same = first == last
    if same.any():
        mat[same, dots_at:width - 2] = _FILLER
    folded = fold[a:b]
    if folded.any():
        mat[folded] = _FILLER
        stars = star[a:b]
        mat[stars, 0] = ord("*")
        mat[stars, 1] = ord("\n")
    if not same.any() and not folded.any() and (decimal_widths(first) == digits).all():
        return mat.reshape(-1)  # every line a range of full-width indices: nothing to drop
    return mat[mat != _FILLER]


def _put_number(mat, at, digits, values):
    """`values` left-aligned in `digits` columns at `at`: zero-padded, the padding then made filler."""
    cells = mat[:, at:at + digits]
    cells[:] = dec_digits(values, digits)
    short = digits - decimal_widths(values)
    if short.any():
        cells[np.arange(digits)[None, :] < short[:, None]] = _FILLER
