"""Words for decoded records: tables, JSON, hexdump and diff output. No decoding happens here."""

import json

from .dumps.decode import Interp
from .memory.flags import flag_names
from .memory.magic import describe_magic_bytes
from .render import SCHEMA_VERSION

__all__ = ["interpretation", "decoded_table", "decoded_doc", "decoded_json", "hexdump_lines", "diff_rows",
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


def _rows(decoded):
    columns, recs = decoded.columns, decoded.records
    fields = (recs[name].tolist() for name in ("column", "index", "offset", "value", "interp"))
    for column_no, index, offset, value, code in zip(*fields):
        yield columns[column_no], index, offset, value, code


def decoded_table(decoded, points_to=None):
    """The records as a table; `points_to` (offset -> text) adds what a followed pointer points at."""
    ctx = decoded.ctx
    points_to = points_to or {}
    where = f" at {ctx.vmctx:#x}" if ctx.vmctx is not None else ""
    address = ctx.vmctx is not None and points_to
    lines = [f"VMComponentContext{where}: ptr_size={int(ctx.ptr)}, {ctx.byte_order}-endian, "
             f"{ctx.offsets.size_of_vmctx()} bytes, {'debug' if ctx.debug_assertions else 'release'}",
             (f"{'address':>18}  " if address else "") + f"{'offset':>8}  {'field':<34} {'raw':<18}  interpretation"]
    for column, index, offset, value, code in _rows(decoded):
        text = interpretation(code, value, ctx)
        if offset in points_to:
            text = points_to[offset] if code == Interp.POINTER else f"{text}: {points_to[offset]}"
        lines.append((f"{ctx.vmctx + offset:#018x}  " if address else "")
                     + f"{offset:8d}  {column.label(index):<34} {_hex(column, value, ctx):<18}  {text}")
    lines.append(_anomaly_summary(decoded.anomalies))
    lines += [f"  @{a.offset}: {a.message}" for a in decoded.anomalies]
    return "\n".join(lines)


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
    return json.dumps(decoded_doc(decoded), indent=1)


def _line_labels(regions, start, stop):
    labels = []
    for r in regions:
        if r.padding_before and r.offset - r.padding_before < stop and start < r.offset:
            labels.append("(hole)")
        if not r.size or r.end <= start or stop <= r.offset:
            continue
        if r.count_name is None:
            labels.append(r.name)
            continue
        first = max(0, (start - r.offset) // r.elem_size)
        last = min(r.count - 1, (stop - 1 - r.offset) // r.elem_size)
        labels.append(f"{r.name}[{first}]" if first == last else f"{r.name}[{first}..{last}]")
    return ", ".join(labels)


def hexdump_lines(ctx):
    """`hexdump -C` lines, repeated lines folded into `*`, field names in the right margin."""
    raw = bytes(ctx.memory)
    regions = ctx.offsets.regions()
    previous = None
    folded = False
    for start in range(0, len(raw), 16):
        chunk = raw[start:start + 16]
        labels = _line_labels(regions, start, start + len(chunk))
        # Fold like hexdump -C, but never across a change of region, so
        # every region's first line keeps its name in the margin.
        key = (chunk, tuple(label.split("[")[0] for label in labels.split(", ")))
        if key == previous and len(chunk) == 16:
            if not folded:
                yield "*"
                folded = True
            continue
        previous, folded = key, False
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        yield f"{start:08x}  {left:<23}  {right:<23}  |{text}|".ljust(78) + f"  {labels}"
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
