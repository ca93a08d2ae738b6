"""The records that differ between two decodes of one layout, as a table and as JSON."""

import json

from .capture import origin_doc
from .schema import SCHEMA_VERSION
from .words import hex_value, interpretation

__all__ = ["diff_rows", "diff_table", "diff_json", "diff_doc"]


def diff_rows(old, new):
    """(column, index, offset, old value, old code, new value, new code) of every differing record."""
    a, b = old.records, new.records
    changed = (a["value"] != b["value"]) | (a["interp"] != b["interp"])
    for i in changed.nonzero()[0].tolist():
        ra, rb = a[i], b[i]
        yield (old.columns[ra["column"]], int(ra["index"]), int(ra["offset"]), int(ra["value"]),
               int(ra["interp"]), int(rb["value"]), int(rb["interp"]))


def diff_table(old, new, padding):
    """One line per differing record (then per differing run of padding `(start, stop)`), or "no differences"."""
    lines = []
    for column, index, offset, va, ca, vb, cb in diff_rows(old, new):
        lines.append(f"{offset:8d}  {column.label(index):<34} {hex_value(column, va, old.ctx)} "
                     f"({interpretation(ca, va, old.ctx)}) -> {hex_value(column, vb, new.ctx)} "
                     f"({interpretation(cb, vb, new.ctx)})")
    lines += [f"{start:8d}  padding bytes {start}..{stop - 1} differ" for start, stop in padding]
    return "\n".join(lines) if lines else "no differences"


def diff_doc(old, new, padding):
    """`diff --json`'s object; `origins` (`old`, `new`: where each came from) when either is a captured dump."""
    changes = [{
        "field": column.label(index), "region": column.region, "index": index if column.is_array else None,
        "sub": column.sub, "offset": offset,
        "old": {"value": hex_value(column, va, old.ctx), "text": interpretation(ca, va, old.ctx)},
        "new": {"value": hex_value(column, vb, new.ctx), "text": interpretation(cb, vb, new.ctx)},
    } for column, index, offset, va, ca, vb, cb in diff_rows(old, new)]
    doc = {"schema_version": SCHEMA_VERSION, "layout": old.ctx.layout_parameters(), "changes": changes,
           "padding": [{"start": s, "stop": e} for s, e in padding]}
    origins = {"old": origin_doc(old.ctx), "new": origin_doc(new.ctx)}
    if origins["old"] or origins["new"]:
        doc["origins"] = origins
    return doc


def diff_json(old, new, padding):
    return json.dumps(diff_doc(old, new, padding), indent=1)
