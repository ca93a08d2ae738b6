"""Words for decoded records: tables, JSON, hexdump and diff output. No decoding happens here."""

import bisect
import json
from functools import lru_cache

import numpy as np

from .dumps.decode import Interp
from .memory.flags import flag_names
from .memory.magic import describe_magic_bytes
from .render import SCHEMA_VERSION

__all__ = ["interpretation", "decoded_table", "decoded_table_chunks", "decoded_doc", "decoded_json", "decoded_json_chunks",
           "hexdump_lines", "diff_rows",
           "diff_table", "diff_json"]


def _i32(value):
    return value - (1 << 32) if value & 0x8000_0000 else value


def interpretation(code, value, ctx):
    if code == Interp.MAGIC_OK:
        return "VMCOMPONENT_MAGIC (ok)"
    if code == Interp.MAGIC_BAD:
        raw = value.to_bytes(4, ctx.byte_order)
        what = describe_magic_bytes(raw, ctx.byte_order, ctx.ptr)
        return f"BAD MAGIC {raw!r}" + (f": {what}" if what else "")
    if code == Interp.FLAGS:
        return flag_names(_i32(value), ctx.layout.flag_bits)
    if code == Interp.POISON:
        return "unset (debug poison)"
    if code == Interp.NULL:
        return "null"
    if code == Interp.POINTER:
        return "pointer (not followed)"
    if code == Interp.OWN_VMCTX:
        return "this context"
    if code == Interp.OTHER_VMCTX:
        return "NOT this context"
    return str(value)


def _hex(column, value, ctx):
    width = int(ctx.ptr) if column.kind == "ptr" else 4
    return f"{value:#0{2 + 2 * width}x}"


def _rows(decoded, block=1 << 16):
    """(column, index, offset, value, code) per record, as Python ints a block at a time (bounded memory)."""
    columns, recs = decoded.columns, decoded.records
    for start in range(0, len(recs), block):
        part = recs[start:start + block]
        fields = (part[name].tolist() for name in ("column", "index", "offset", "value", "interp"))
        for column_no, index, offset, value, code in zip(*fields):
            yield columns[column_no], index, offset, value, code


def decoded_table(decoded, points_to=None):
    """The records as a table; `points_to` (offset -> text) adds what a followed pointer points at."""
    return "".join(decoded_table_chunks(decoded, points_to))[:-1]


def decoded_table_chunks(decoded, points_to=None, rows=1 << 15, binary=False):
    """`decoded_table` plus a final newline, as pieces of about `rows` lines, for streaming.

    Runs of elements whose lines have the same shape (same interpretation per
    sub-field, same number of digits) are rendered as one byte matrix filled
    column by column with numpy; anything else line by line. The text is the same.
    With `binary` the pieces are ASCII bytes-like objects (for a binary stream:
    no decoding and re-encoding of hundreds of megabytes).
    """
    for piece in _table_pieces(decoded, points_to, rows):
        if isinstance(piece, str):
            yield piece.encode("ascii") if binary else piece
        else:
            yield piece.reshape(-1).data if binary else piece.tobytes().decode("ascii")


def _table_pieces(decoded, points_to, rows):
    ctx = decoded.ctx
    points_to = points_to or {}
    where = f" at {ctx.vmctx:#x}" if ctx.vmctx is not None else ""
    address = ctx.vmctx is not None and points_to
    yield "\n".join([
        f"VMComponentContext{where}: ptr_size={int(ctx.ptr)}, {ctx.byte_order}-endian, "
        f"{ctx.offsets.size_of_vmctx()} bytes, {'debug' if ctx.debug_assertions else 'release'}",
        (f"{'address':>18}  " if address else "") + f"{'offset':>8}  {'field':<34} {'raw':<18}  interpretation"]) + "\n"
    for field, region, first in decoded.blocks:
        step = max(1, rows // len(field.elem_type.subfields))
        for start in range(0, region.count, step):
            stop = min(region.count, start + step)
            fast = None if points_to else _fast_block(decoded, field, region, first, start, stop)
            if fast is not None:
                yield from fast
                continue
            lines = []
            for column, index, offset, value, code in _record_rows(decoded, decoded.block_records(
                    field, region, first, start, stop)):
                text = interpretation(code, value, ctx)
                if offset in points_to:
                    text = points_to[offset] if code == Interp.POINTER else f"{text}: {points_to[offset]}"
                lines.append((f"{ctx.vmctx + offset:#018x}  " if address else "")
                             + f"{offset:8d}  {column.label(index):<34} {_hex(column, value, ctx):<18}  {text}\n")
            yield "".join(lines)
    yield "\n".join([_anomaly_summary(decoded.anomalies)]
                    + [f"  @{a.offset}: {a.message}" for a in decoded.anomalies]) + "\n"


def _record_rows(decoded, recs):
    columns = decoded.columns
    fields = (recs[name].tolist() for name in ("column", "index", "offset", "value", "interp"))
    for column_no, index, offset, value, code in zip(*fields):
        yield columns[column_no], index, offset, value, code


# Interpretations whose text does not depend on the value.
_FIXED_TEXT = {Interp.POISON: "unset (debug poison)", Interp.NULL: "null", Interp.POINTER: "pointer (not followed)",
               Interp.OWN_VMCTX: "this context", Interp.OTHER_VMCTX: "NOT this context"}
_MIN_RUN = 32  # fewer elements per run on average than this: line by line (0: always by runs)
_OFFSET_LIMIT = 10**8  # offsets with more digits widen their column: line by line then


def _digits(values, n):
    """(len(values), n) ASCII digits of non-negative `values`, zero-padded to `n`."""
    if n <= 8:
        return _dec8(values)[:, 8 - n:]
    out = np.empty((len(values), n), np.uint8)
    q = values.astype(np.int64)
    for p in range(n - 1, -1, -1):
        q, r = np.divmod(q, 10)
        out[:, p] = r
    out += 48
    return out


@lru_cache(maxsize=None)
def _hex_table():
    """Two hex digits per byte value."""
    return np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), np.uint8).reshape(256, 2)


@lru_cache(maxsize=None)
def _dec4_tables():
    """Four decimal digits per entry as one 4-byte word: zero-padded, space-padded, and four blanks.

    Built on first use, not at import: start-up of commands that print no table stays cheap."""
    return (np.frombuffer(b"".join(f"{i:04d}".encode() for i in range(10_000)), np.uint32),
            np.frombuffer(b"".join(f"{i:4d}".encode() for i in range(10_000)), np.uint32),
            np.frombuffer(b"    ", np.uint32)[0])


def _dec8(values, spaced=False):
    """(len(values), 8) ASCII of `values` < 10**8: zero-padded, or right-aligned in spaces (`{:8d}`)."""
    dec4, spaced4, blank4 = _dec4_tables()
    hi, lo = np.divmod(values.astype(np.int32), 10_000)
    out = np.empty((len(values), 2), np.uint32)
    if spaced and len(values) and hi.min() > 0:  # all of eight digits' width: no blanks
        out[:, 0] = spaced4[hi]
        out[:, 1] = dec4[lo]
    elif spaced and len(values) and hi.max() == 0:  # all of four digits or fewer
        out[:, 0] = blank4
        out[:, 1] = spaced4[lo]
    elif spaced:
        out[:, 0] = np.where(hi > 0, spaced4[hi], blank4)
        out[:, 1] = np.where(hi > 0, dec4[lo], spaced4[lo])
    else:
        out[:, 0] = dec4[hi]
        out[:, 1] = dec4[lo]
    return out.view(np.uint8).reshape(len(values), 8)


def _ndigits(values):
    """Decimal digits of each non-negative value (1 for 0)."""
    v = values.astype(np.uint64)
    n = np.ones(len(v), np.int64)
    for k in range(1, len(str(int(v.max()))) if len(v) else 1):
        n += v >= np.uint64(10**k)
    return n


def _fast_block(decoded, field, region, first, start, stop):
    """Elements `start:stop` of an array region as pieces of text, or None when they need the line-by-line path."""
    ctx = decoded.ctx
    subs = field.elem_type.subfields
    if field.count is None or region.end >= _OFFSET_LIMIT or any(s.role in ("magic", "flags") for s in subs):
        return None
    n = stop - start
    values, codes = zip(*decoded.element_columns(field, start, stop))
    # Lines keep one shape while codes (and a value's digit count) stay the same, and between
    # the points where an index or an offset gains a digit.
    if len(subs) > 4:
        return None
    key = np.zeros(n, np.int64)
    for k, (code, v) in enumerate(zip(codes, values)):
        key |= code.astype(np.int64) << (16 * k)
        if (code == Interp.VALUE).any():
            key |= np.where(code == Interp.VALUE, _ndigits(v), 0) << (16 * k + 8)
    cuts = set(np.flatnonzero(key[1:] != key[:-1]) + 1 + start)
    sub_offsets = [field.sub_offset(s.name, ctx.ptr) for s in subs]
    for p in range(1, 10):  # where the index gains a digit
        if start < 10**p < stop:
            cuts.add(10**p)
    if len(cuts) * _MIN_RUN > n + 8 * _MIN_RUN:  # runs too short for numpy to pay off
        return None
    bounds = [start] + sorted(cuts) + [stop]
    return (_render_run(decoded, field, region, first, values, codes, sub_offsets, a, b, start)
            for a, b in zip(bounds, bounds[1:]))


def _render_run(decoded, field, region, first, values, codes, sub_offsets, a, b, start):
    """Elements a:b (one line shape) as text: a template per element, digits written column by column."""
    ctx = decoded.ctx
    subs = field.elem_type.subfields
    m = b - a
    index = np.arange(a, b, dtype=np.int64)
    ndig = len(str(a))
    template, fills = [], []
    at = 0
    for k, sub in enumerate(subs):
        column = decoded.columns[first + k]
        v = values[k][a - start:b - start]
        code = int(codes[k][a - start])
        width = int(ctx.ptr) if column.kind == "ptr" else 4
        offset0 = region.offset + a * region.elem_size + sub_offsets[k]
        label = column.label(a)
        hex_text = _hex(column, int(v[0]), ctx)
        constant = bool((v == v[0]).all())
        text = _FIXED_TEXT.get(code)
        if text is None:  # Interp.VALUE: the number itself
            text = str(int(v[0]))
        line = f"{offset0:8d}  {label:<34} {hex_text:<18}  {text}\n"
        fills.append(("offset", at, 8, sub_offsets[k]))
        label_at = at + 10 + len(field.name) + 1
        fills.append(("index", label_at, ndig, None))
        hex_at = at + 10 + max(34, len(label)) + 1 + 2
        if not constant:
            fills.append(("hex", hex_at, 2 * width, (v, width)))
            if code not in _FIXED_TEXT:
                fills.append(("value", hex_at - 2 + max(18, len(hex_text)) + 2, len(text), v))
        template.append(line)
        at += len(line)
    row = np.frombuffer("".join(template).encode("ascii"), np.uint8)
    variable = np.zeros(len(row), bool)
    for _, pos, count, _ in fills:
        variable[pos:pos + count] = True
    mat = np.tile(row, (m, 1))
    index_words = _dec8(index).reshape(-1).view(np.uint64)
    element_offsets = region.offset + index * region.elem_size
    for kind, pos, count, extra in fills:
        if kind == "offset":
            _put(mat, row, variable, pos, count, _dec8(element_offsets + extra, spaced=True).reshape(-1).view(np.uint64))
        elif kind == "index":
            _put(mat, row, variable, pos, count, index_words)
        elif kind == "hex":
            v, width = extra
            big = v.astype(">u8").view(np.uint8).reshape(m, 8)[:, 8 - width:]
            words = _hex_table()[big].reshape(m, count).view(np.uint64)  # 8 hex digits per word
            for j in range(count // 8):
                _put(mat, row, variable, pos + 8 * j, 8, np.ascontiguousarray(words[:, j]))
        elif count <= 8:
            _put(mat, row, variable, pos, count, _dec8(extra).reshape(-1).view(np.uint64))
        else:
            mat[:, pos:pos + count] = _digits(extra, count)
    return mat


def _put(mat, row, variable, pos, count, words):
    """Write the last `count` characters of each row's 8-character word at column `pos` of `mat`.

    One unaligned 8-byte store per row where the 8 bytes ending at the field's end
    hold, besides the field, only bytes fixed in the template (they are stored
    with their template value); byte by byte otherwise.
    """
    m, width = mat.shape
    start = pos + count - 8
    if count < 8 and (start < 0 or variable[start:pos].any()):
        mat[:, pos:pos + count] = words.view(np.uint8).reshape(m, 8)[:, 8 - count:]
        return
    if count < 8:
        keep = np.frombuffer(bytes(8 - count) + b"\xff" * count, np.uint64)[0]
        fixed = np.frombuffer(row[start:pos].tobytes() + bytes(count), np.uint64)[0]
        words = (words & keep) | fixed
    target = np.ndarray((m,), np.uint64, buffer=mat.reshape(-1), offset=start, strides=(width,))
    target[:] = words


def _anomaly_summary(anomalies):
    return "anomalies: none" if not anomalies else f"anomalies: {len(anomalies)}"



def decoded_doc(decoded, points_to=None):
    """`decode --json`'s object; with a known address every record has its `address`, and with
    `points_to` (offset -> text) what its pointer points at."""
    ctx = decoded.ctx
    records = []
    for column, index, offset, value, code in _rows(decoded):
        record = {
            "region": column.region,
            "index": index if column.is_array else None,
            "sub": column.sub,
            "field": column.label(index),
            "offset": offset,
            "value": _hex(column, value, ctx),
            "interpretation": Interp.NAMES[code],
            "text": interpretation(code, value, ctx),
        }
        if ctx.vmctx is not None:
            record["address"] = f"{ctx.vmctx + offset:#x}"
        if points_to is not None:
            record["points_to"] = points_to.get(offset)
        records.append(record)
    return {"schema_version": SCHEMA_VERSION, "layout": ctx.layout_parameters(), "records": records,
            "anomalies": [a.to_dict() for a in decoded.anomalies]}


def decoded_json(decoded):
    return "".join(decoded_json_chunks(decoded))[:-1]


# What `json.dumps(..., indent=1)` writes around one record of the top-level "records" list.
_RECORD_KEYS = ("region", "index", "sub", "field", "offset", "value", "interpretation", "text")


def decoded_json_chunks(decoded, points_to=None, rows=1 << 13):
    """`decoded_json`'s text plus a final newline, as pieces of about `rows` records, for streaming.

    The bytes `json.dumps(decoded_doc(decoded, points_to), indent=1)` would
    give, but no record becomes a dict: each is formatted from its column's
    template (keys and fixed strings encoded once), so a dump of a million
    elements is written without holding its records as Python objects.
    """
    ctx = decoded.ctx
    text = json.dumps({"schema_version": SCHEMA_VERSION, "layout": ctx.layout_parameters(), "records": None,
                       "anomalies": [a.to_dict() for a in decoded.anomalies]}, indent=1)
    at = text.index('\n "records": null')
    head, tail = text[:at], text[at + len('\n "records": null'):]
    enc = json.encoder.encode_basestring_ascii
    keys = [f'\n   "{k}": ' for k in _RECORD_KEYS + ("address", "points_to")]
    interp_names = [enc(name) for name in Interp.NAMES]
    fixed_texts = {}
    templates = {}
    out, n = [head, '\n "records": ['], 0
    for column, index, offset, value, code in _rows(decoded):
        template = templates.get(column)
        if template is None:
            template = templates[column] = (
                "  {" + keys[0] + enc(column.region) + "," + keys[1], "," + keys[2]
                + ("null" if column.sub is None else enc(column.sub)) + "," + keys[3])
        words = fixed_texts.get((code, value)) if code != Interp.VALUE else None
        if words is None:
            words = enc(interpretation(code, value, ctx))
            if code not in (Interp.VALUE, Interp.MAGIC_BAD, Interp.FLAGS):
                fixed_texts[(code, value)] = words
        record = [template[0], str(index) if column.is_array else "null", template[1], enc(column.label(index)),
                  ",", keys[4], str(offset), ",", keys[5], '"', _hex(column, value, ctx), '",', keys[6],
                  interp_names[code], ",", keys[7], words]
        if ctx.vmctx is not None:
            record += [",", keys[8], f'"{ctx.vmctx + offset:#x}"']
        if points_to is not None:
            target = points_to.get(offset)
            record += [",", keys[9], "null" if target is None else enc(target)]
        record.append("\n  }")
        out.append(("\n" if n == 0 else ",\n") + "".join(record))
        n += 1
        if n % rows == 0:
            yield "".join(out)
            out = []
    out.append("\n ]" if n else "]")
    out.append(tail + "\n")
    yield "".join(out)


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


def diff_rows(old, new):
    """(column, index, offset, old value, old code, new value, new code) of every differing record."""
    a, b = old.records, new.records
    changed = (a["value"] != b["value"]) | (a["interp"] != b["interp"])
    for i in changed.nonzero()[0].tolist():
        ra, rb = a[i], b[i]
        yield (old.columns[ra["column"]], int(ra["index"]), int(ra["offset"]), int(ra["value"]),
               int(ra["interp"]), int(rb["value"]), int(rb["interp"]))


def diff_table(old, new, padding):
    lines = []
    for column, index, offset, va, ca, vb, cb in diff_rows(old, new):
        lines.append(f"{offset:8d}  {column.label(index):<34} {_hex(column, va, old.ctx)} "
                     f"({interpretation(ca, va, old.ctx)}) -> {_hex(column, vb, new.ctx)} "
                     f"({interpretation(cb, vb, new.ctx)})")
    lines += [f"{start:8d}  padding bytes {start}..{stop - 1} differ" for start, stop in padding]
    return "\n".join(lines) if lines else "no differences"


def diff_json(old, new, padding):
    changes = [{
        "field": column.label(index), "region": column.region, "index": index if column.is_array else None,
        "sub": column.sub, "offset": offset,
        "old": {"value": _hex(column, va, old.ctx), "text": interpretation(ca, va, old.ctx)},
        "new": {"value": _hex(column, vb, new.ctx), "text": interpretation(cb, vb, new.ctx)},
    } for column, index, offset, va, ca, vb, cb in diff_rows(old, new)]
    return json.dumps({"schema_version": SCHEMA_VERSION, "layout": old.ctx.layout_parameters(), "changes": changes,
                       "padding": [{"start": s, "stop": e} for s, e in padding]}, indent=1)
