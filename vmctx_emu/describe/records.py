"""A decode's records as a table and as JSON (`decode`, and each context of `scan`), whole or streamed.

Runs of array elements whose text has one shape (the same interpretation per
sub-field, numbers of the same digit counts) are rendered as one byte matrix,
one row per element, numbers filled column by column (`textgrid.Row`);
everything else record by record. The text is the same either way.
"""

import json

import numpy as np

from ..dumps.decode import Interp
from .schema import SCHEMA_VERSION
from .textgrid import Row, dec_digits, dec_right, decimal_widths, hex_digits
from .words import FIXED_TEXT, anomaly_summary, hex_value, hex_width, interpretation
from .symbols import short_name

__all__ = ["record_rows", "decoded_table", "decoded_table_chunks", "decoded_doc", "decoded_json",
           "decoded_json_chunks", "json_object_chunks", "pointed_text", "MIN_RUN"]

MIN_RUN = 32  # fewer elements per run on average than this: record by record (0: always by runs)
_OFFSET_LIMIT = 10**8  # a table's offsets with more digits widen their column: record by record then
# The keys of one record, in order (`address` with a known address, `points_to` when a scan names pointers).
_RECORD_KEYS = ("region", "index", "sub", "field", "offset", "value", "interpretation", "text", "address", "points_to")
_enc = json.encoder.encode_basestring_ascii


def record_rows(decoded, recs=None, block=1 << 16):
    """(column, index, offset, value, code) of each record of `recs` (default: every record, a block
    at a time, so memory stays bounded), as Python ints."""
    parts = decoded.chunks(block) if recs is None else (recs,)
    columns = decoded.columns
    for part in parts:
        fields = (part[name].tolist() for name in ("column", "index", "offset", "value", "interp"))
        for column_no, index, offset, value, code in zip(*fields):
            yield columns[column_no], index, offset, value, code


def _output(piece, binary):
    """A piece as str, or as ASCII bytes-like with `binary` (a matrix is never decoded and re-encoded)."""
    if isinstance(piece, str):
        return piece.encode("ascii") if binary else piece
    flat = piece.reshape(-1)
    return flat.data if binary else flat.tobytes().decode("ascii")


# ------------------------------------------------------------------------------------------ runs

def _runs(decoded, field, region, start, stop, cuts):
    """(values, codes, bounds) for elements `start:stop` of an array region rendered as matrices
    (bounds: the run edges), or None when they are to be rendered record by record.

    Lines keep one shape while the codes (and a plain value's digit count) stay the same, and
    between the `cuts` the format adds (where an index or an offset gains a digit).
    """
    subs = field.elem_type.subfields
    if field.count is None or len(subs) > 4 or any(s.role in ("magic", "flags") for s in subs):
        return None
    n = stop - start
    values, codes = zip(*decoded.element_columns(field, start, stop))
    key = np.zeros(n, np.int64)
    for k, (code, v) in enumerate(zip(codes, values)):
        key |= code.astype(np.int64) << (16 * k)
        if (code == Interp.VALUE).any():
            key |= np.where(code == Interp.VALUE, decimal_widths(v), 0) << (16 * k + 8)
    found = set(np.flatnonzero(key[1:] != key[:-1]) + 1 + start)
    found.update(c for c in cuts if start < c < stop)
    if len(found) * MIN_RUN > n + 8 * MIN_RUN:  # runs too short for numpy to pay off
        return None
    return values, codes, [start] + sorted(found) + [stop]


def _index_cuts():
    """Where an element index gains a digit."""
    return [10**p for p in range(1, 11)]


def _digit_cuts(region, sub_offset, base, radix):
    """Elements whose `base + offset` (offset of the sub-field at `sub_offset`) gains a digit in `radix`."""
    first = base + region.offset + sub_offset
    return [-(-(radix**p - first) // region.elem_size) for p in range(1, 17) if radix**p > first]


# ----------------------------------------------------------------------------------------- table

def decoded_table(decoded, points_to=None):
    """The records as a table; `points_to` (offset -> text) adds what a followed pointer points at."""
    return "".join(decoded_table_chunks(decoded, points_to))[:-1]


def decoded_table_chunks(decoded, points_to=None, rows=1 << 15, binary=False):
    """`decoded_table` plus a final newline, as pieces of about `rows` lines, for streaming.

    With `binary` the pieces are ASCII bytes-like objects (for a binary stream: no decoding and
    re-encoding of hundreds of megabytes).
    """
    for piece in _table_pieces(decoded, points_to or {}, rows):
        yield _output(piece, binary)


def _table_pieces(decoded, points_to, rows):
    ctx = decoded.ctx
    where = f" at {ctx.vmctx:#x}" if ctx.vmctx is not None else ""
    address = ctx.vmctx is not None and points_to
    yield "\n".join([
        f"VMComponentContext{where}: ptr_size={int(ctx.ptr)}, {ctx.byte_order}-endian, "
        f"{ctx.offsets.size_of_vmctx()} bytes, {'debug' if ctx.debug_assertions else 'release'}",
        (f"{'address':>18}  " if address else "") + f"{'offset':>8}  {'field':<34} {'raw':<18}  interpretation"]) + "\n"
    if points_to:  # a scan's context: each record its own line (its pointers' targets differ), in one pass
        for part in decoded.chunks(rows):
            yield _table_lines(decoded, part, points_to, address)
    for field, region, first in () if points_to else decoded.blocks:
        step = max(1, rows // len(field.elem_type.subfields))
        for start in range(0, region.count, step):
            stop = min(region.count, start + step)
            runs = None if region.end >= _OFFSET_LIMIT else _runs(decoded, field, region, start, stop, _index_cuts())
            if runs is not None:
                values, codes, bounds = runs
                for a, b in zip(bounds, bounds[1:]):
                    yield _table_run(decoded, field, region, first, values, codes, a, b, start)
                continue
            yield _table_lines(decoded, decoded.block_records(field, region, first, start, stop), points_to, address)
    anomalies = [anomaly_summary(decoded.anomalies)] + [f"  @{a.offset}: {a.message}" for a in decoded.anomalies]
    yield "\n".join(anomalies) + "\n"


# A scan's table shows this many zero slots in a row (null pointers, zero numbers) of one region as one line.
ZERO_RUN = 3


def _zero_runs(rows, points_to):
    """`rows` with each run of at least ZERO_RUN zero slots of one region replaced by (first, last, count)."""
    out, run = [], []

    def flush():
        if len(run) >= ZERO_RUN:
            out.append((run[0], run[-1], len(run)))
        else:
            out.extend(run)
        run.clear()

    for row in rows:
        column, _, offset, value, code = row
        zero = value == 0 and code in (Interp.NULL, Interp.VALUE) and offset not in points_to
        if run and (not zero or column.region != run[-1][0].region):
            flush()
        if zero:
            run.append(row)
        else:
            out.append(row)
    flush()
    return out


def _zero_run_line(decoded, first, last, count, address):
    ctx = decoded.ctx
    (column, index, offset, _, _), (end_column, end_index, end_offset, _, _) = first, last
    whole = column.is_array and column.sub == _first_sub(decoded, column) and \
        end_column.sub == _last_sub(decoded, end_column)
    label = (f"{column.region}[{index}..{end_index}]" if whole and index != end_index
             else f"{column.label(index)} .. {end_column.label(end_index)}")
    return ((f"{ctx.vmctx + offset:#018x}  " if address else "")
            + f"{offset:8d}  {label:<34} {'0x0':<18}  zero: {count} slots in a row (null or 0), offsets "
              f"{offset}..{end_offset}\n")


def _first_sub(decoded, column):
    return next(c.sub for c in decoded.columns if c.region == column.region)


def _last_sub(decoded, column):
    return [c.sub for c in decoded.columns if c.region == column.region][-1]


def _table_lines(decoded, recs, points_to, address):
    """The table's lines of records `recs`, one by one; in a scan's table (`points_to` given), runs of zero
    slots on one line each."""
    ctx = decoded.ctx
    lines = []
    rows = record_rows(decoded, recs)
    for row in _zero_runs(rows, points_to) if points_to else rows:
        if len(row) == 3:
            lines.append(_zero_run_line(decoded, *row, address))
            continue
        column, index, offset, value, code = row
        text = interpretation(code, value, ctx)
        if offset in points_to:  # short in text (generic arguments elided), whole in JSON
            text = pointed_text(text, code, points_to[offset], short=True)
        lines.append((f"{ctx.vmctx + offset:#018x}  " if address else "")
                     + f"{offset:8d}  {column.label(index):<34} {hex_value(column, value, ctx):<18}  {text}\n")
    return "".join(lines)


def _run_parts(decoded, field, region, first, values, codes, a, b, start):
    """A run's Row, its index digits, and per sub-field (column, values, code, offsets) of elements a:b."""
    index = np.arange(a, b, dtype=np.int64)
    subs = []
    for k, sub in enumerate(field.elem_type.subfields):
        offsets = region.offset + index * region.elem_size + field.sub_offset(sub.name, decoded.ctx.ptr)
        subs.append((decoded.columns[first + k], values[k][a - start:b - start], int(codes[k][a - start]),
                     offsets.astype(np.uint64)))
    return Row(b - a), dec_digits(index, len(str(a))), subs


def _table_run(decoded, field, region, first, values, codes, a, b, start):
    """Elements a:b (one line shape) as an (elements, bytes) matrix: one line per sub-field each."""
    ctx = decoded.ctx
    row, digits, subs = _run_parts(decoded, field, region, first, values, codes, a, b, start)
    for column, v, code, offsets in subs:
        row.fill(dec_right(offsets, 8))
        row.text(f"  {column.region}[")
        row.fill(digits)
        row.text(f"]{'' if column.single else '.' + column.sub}" + " " * (34 - len(column.label(a))) + " 0x")
        _fill_hex(row, v, 2 * hex_width(column, ctx))
        row.text(" " * (16 - 2 * hex_width(column, ctx)) + "  ")
        _fill_text(row, v, code)
        row.text("\n")
    return row.matrix()


def _fill_hex(row, v, n):
    """A run's raw values as `n` hex digits (as text when they are all the same)."""
    if (v == v[0]).all():
        row.text(f"{int(v[0]):0{n}x}")
    else:
        row.fill(hex_digits(v, n))


def _fill_text(row, v, code, quote=""):
    """A run's interpretation: fixed words, or the plain values themselves (one digit count per run)."""
    text = FIXED_TEXT.get(code)
    if text is not None:
        row.text(_enc(text) if quote else text)
    elif (v == v[0]).all():
        row.text(f"{quote}{int(v[0])}{quote}")
    else:
        row.text(quote)
        row.fill(dec_digits(v, len(str(int(v[0])))))
        row.text(quote)


# ------------------------------------------------------------------------------------------ JSON

def decoded_doc(decoded, points_to=None):
    """`decode --json`'s object; with a known address every record has its `address`, and with
    `points_to` (offset -> text) what its pointer points at."""
    ctx = decoded.ctx
    records = []
    for column, index, offset, value, code in record_rows(decoded):
        record = {
            "region": column.region,
            "index": index if column.is_array else None,
            "sub": column.sub,
            "field": column.label(index),
            "offset": offset,
            "value": hex_value(column, value, ctx),
            "interpretation": Interp.NAMES[code],
            "text": interpretation(code, value, ctx),
        }
        if ctx.vmctx is not None:
            record["address"] = f"{ctx.vmctx + offset:#x}"
        if points_to is not None:
            target = points_to.get(offset)
            record["points_to"] = target
            if target is not None:
                record["text"] = pointed_text(record["text"], code, target)
        records.append(record)
    return {"schema_version": SCHEMA_VERSION, "layout": ctx.layout_parameters(), "records": records,
            "anomalies": [a.to_dict() for a in decoded.anomalies]}


def decoded_json(decoded, points_to=None):
    return "".join(decoded_json_chunks(decoded, points_to))[:-1]


def decoded_json_chunks(decoded, points_to=None, rows=1 << 13, binary=False):
    """`decoded_json`'s text plus a final newline, in pieces of about `rows` records (an element's
    records stay together), for streaming.

    The bytes `json.dumps(decoded_doc(decoded, points_to), indent=1)` would give, but no record
    becomes a dict: each is filled into its column's template.
    """
    yield from json_object_chunks(decoded, points_to, rows=rows, binary=binary, end="\n")


def json_object_chunks(decoded, points_to=None, *, rows=1 << 13, binary=False, depth=0, schema=True, after=None,
                       end=""):
    """The decode's JSON object as `json.dumps(..., indent=1)` writes it `depth` levels deep in a
    document (a scan's contexts: 2), in pieces of about `rows` records, then `end`.

    `schema=False` leaves out `schema_version`; `after` (a dict) adds its keys after `anomalies`.
    """
    ctx = decoded.ctx
    doc = {"schema_version": SCHEMA_VERSION} if schema else {}
    doc.update({"layout": ctx.layout_parameters(), "records": None,
                "anomalies": [a.to_dict() for a in decoded.anomalies]})
    doc.update(after or {})
    pad = " " * depth
    text = json.dumps(doc, indent=1).replace("\n", "\n" + pad)
    marker = f'\n{pad} "records": null'
    at = text.index(marker)
    pending, tail, n = text[:at] + f'\n{pad} "records": [', text[at + len(marker):], 0
    for piece, count in _json_record_pieces(decoded, points_to, rows, pad):
        if n == 0:  # the first record follows the bracket without a comma
            piece = piece[1:] if isinstance(piece, str) else piece.reshape(-1)[1:]
        n += count
        if isinstance(piece, str):
            piece, pending = pending + piece, ""
        elif pending:
            yield _output(pending, binary)
            pending = ""
        yield _output(piece, binary)
    yield _output(pending + (f"\n{pad} ]" if n else "]") + tail + end, binary)


def _json_record_pieces(decoded, points_to, rows, pad):
    """(piece, records in it) of every record in order, each record as `,\\n  {...}` at `pad`."""
    ctx = decoded.ctx
    keys = [f'\n{pad}   "{k}": ' for k in _RECORD_KEYS]
    if points_to is not None:  # a scan's context: each record filled in on its own, in one pass
        for part in decoded.chunks(rows):
            yield "".join(_json_record(ctx, keys, pad, row, points_to) for row in record_rows(decoded, part)), len(part)
        return
    for field, region, first in decoded.blocks:
        step = max(1, rows // len(field.elem_type.subfields))
        subs = len(field.elem_type.subfields)
        for start in range(0, region.count, step):
            stop = min(region.count, start + step)
            runs = _runs(decoded, field, region, start, stop, _json_cuts(ctx, field, region))
            if runs is not None:
                values, codes, bounds = runs
                for a, b in zip(bounds, bounds[1:]):
                    run = _json_run(decoded, field, region, first, values, codes, a, b, start, pad, keys)
                    yield run, (b - a) * subs
                continue
            recs = decoded.block_records(field, region, first, start, stop)
            yield "".join(_json_record(ctx, keys, pad, row, points_to) for row in record_rows(decoded, recs)), len(recs)


_FIXED_WORDS = {}


def _json_record(ctx, keys, pad, row, points_to):
    column, index, offset, value, code = row
    target = None if points_to is None else points_to.get(offset)
    words = _FIXED_WORDS.get(code) if code in FIXED_TEXT and target is None else None
    if target is not None:
        words = _enc(pointed_text(interpretation(code, value, ctx), code, target))
    elif words is None:
        words = _enc(interpretation(code, value, ctx))
        if code in FIXED_TEXT:
            _FIXED_WORDS[code] = words
    record = [f",\n{pad}  {{", keys[0], _enc(column.region), ",", keys[1], str(index) if column.is_array else "null",
              ",", keys[2], "null" if column.sub is None else _enc(column.sub), ",", keys[3], _enc(column.label(index)),
              ",", keys[4], str(offset), ",", keys[5], '"', hex_value(column, value, ctx), '",', keys[6],
              _enc(Interp.NAMES[code]), ",", keys[7], words]
    if ctx.vmctx is not None:
        record += [",", keys[8], f'"{ctx.vmctx + offset:#x}"']
    if points_to is not None:
        record += [",", keys[9], "null" if target is None else _pointee_json(target, pad)]
    record.append(f"\n{pad}  }}")
    return "".join(record)


def pointed_text(text, code, target, short=False):
    """A pointer's `text` once followed: what it points at (a pointee's text, or the text given), after
    what the value itself says unless that is only "pointer (not followed)"."""
    named = target["text"] if isinstance(target, dict) else target
    named = short_name(named) if short else named
    return named if code == Interp.POINTER else f"{text}: {named}"


# Pointees are shared: a scan names one pointer value once for all its contexts. Their renderings are kept
# by identity (the object kept too, so an id is never reused while its entry lives), a bounded number.
_RENDERED = {}
RENDERED_MAX = 1 << 14


def _rendered(target, how, make):
    key = (id(target), how)
    found = _RENDERED.get(key)
    if found is None or found[0] is not target:
        if len(_RENDERED) >= RENDERED_MAX:
            _RENDERED.clear()
        found = _RENDERED[key] = (target, make())
    return found[1]


def _pointee_json(target, pad):
    """A pointee (a dict of fields) or a plain text, as `json.dumps(..., indent=1)` nests it in a record."""
    if not isinstance(target, dict):
        return _enc(target)
    return _rendered(target, pad, lambda: json.dumps(target, indent=1).replace("\n", f"\n{pad}   "))


def _json_cuts(ctx, field, region):
    """Where a JSON record's unpadded numbers gain a digit: the index, each sub-field's offset and address."""
    cuts = _index_cuts()
    for sub in field.elem_type.subfields:
        at = field.sub_offset(sub.name, ctx.ptr)
        cuts += _digit_cuts(region, at, 0, 10)
        if ctx.vmctx is not None:
            cuts += _digit_cuts(region, at, ctx.vmctx, 16)
    return cuts


def _json_run(decoded, field, region, first, values, codes, a, b, start, pad, keys):
    """Elements a:b (one record shape) as an (elements, bytes) matrix: one record per sub-field each."""
    ctx = decoded.ctx
    row, digits, subs = _run_parts(decoded, field, region, first, values, codes, a, b, start)
    for column, v, code, offsets in subs:
        row.text(f",\n{pad}  {{{keys[0]}{_enc(column.region)},{keys[1]}")
        row.fill(digits)
        row.text(f",{keys[2]}{_enc(column.sub)},{keys[3]}\"{column.region}[")
        row.fill(digits)
        row.text(f"]{'' if column.single else '.' + column.sub}\",{keys[4]}")
        row.fill(dec_digits(offsets, len(str(int(offsets[0])))))
        row.text(f',{keys[5]}"0x')
        _fill_hex(row, v, 2 * hex_width(column, ctx))
        row.text(f'",{keys[6]}{_enc(Interp.NAMES[code])},{keys[7]}')
        _fill_text(row, v, code, quote='"')
        if ctx.vmctx is not None:
            row.text(f',{keys[8]}"0x')
            row.fill(hex_digits(offsets + np.uint64(ctx.vmctx), len(f"{ctx.vmctx + int(offsets[0]):x}")))
            row.text('"')
        row.text(f"\n{pad}  }}")
    return row.matrix()
