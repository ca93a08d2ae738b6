"""A scan (`live.scan`'s `ScanResult` and its `LiveContext`s) as text and as JSON, streamed context by context.

The `*_chunks` generators yield one context at a time (a large context's records in pieces
too), decoding each as it goes when the scan did not (`scan(decode=False)`), so a scan of
thousands of contexts is written without their decodes or their whole text ever held.
"""

import json

from ..live.liveness import FREED, LIVE, UNKNOWN
from .records import decoded_doc, decoded_table_chunks, json_object_chunks
from .schema import SCHEMA_VERSION
from .summary import Palette, context_summary, summary_lines

__all__ = ["scan_counts", "context_doc", "scan_doc", "scan_json", "scan_json_chunks", "scan_text",
           "scan_text_chunks"]


def scan_counts(result):
    """{live, unknown, freed}: the contexts listed in each state; freed ones are counted even when not listed."""
    counts = {state: sum(c.state == state for c in result.contexts) for state in (LIVE, UNKNOWN)}
    counts[FREED] = result.freed
    return counts


def _pointees(ctx):
    """JSON's `points_to`: the pointees as fields where the scan made them, else the texts."""
    return ctx.pointees or ctx.points_to


def _after_records(ctx):
    """What a context's JSON object holds after its decode's keys."""
    liveness = None if ctx.liveness is None else {"state": ctx.liveness.state,
                                                  "evidence": list(ctx.liveness.evidence)}
    return {"liveness": liveness, "shape_from": ctx.shape_from, "image": ctx.image, "notes": list(ctx.notes),
            "summary": context_summary(ctx)}


def _undecoded(ctx):
    """The object of a context that was not decoded (its shape unknown): the layout as far as known, no records."""
    return {"layout": {"layout": ctx.layout.id, "wasmtime": ctx.wasmtime, "address": f"{ctx.address:#x}",
                       "counts": ctx.counts, "size_of_vmctx": None}, "records": [], "anomalies": []}


def context_doc(ctx):
    """One context's JSON object: `decode --json`'s (its records with `address` and `points_to`), then
    `liveness` (`state`, `evidence`), `shape_from`, `image` and `notes`."""
    doc = decoded_doc(ctx.decoded, _pointees(ctx)) if ctx.decoded is not None else _undecoded(ctx)
    doc.pop("schema_version", None)
    doc.update(_after_records(ctx))
    return doc


def _document(result, contexts):
    return {"schema_version": SCHEMA_VERSION, "source": result.source,
            "wasmtime": {"version": result.wasmtime, "from": result.wasmtime_from},
            "liveness": scan_counts(result), "contexts": contexts, "notes": list(result.notes)}


def scan_doc(result):
    """`scan --json`'s object, whole."""
    return _document(result, [context_doc(c) for c in result.decoded_contexts()])


def scan_json(result):
    return "".join(scan_json_chunks(result))[:-1]


def scan_json_chunks(result, rows=1 << 13, binary=False):
    """`json.dumps(scan_doc(result), indent=1)` and a newline, in pieces: a context (or `rows` of its
    records) at a time. With `binary` the pieces are ASCII bytes-like objects."""
    text = json.dumps(_document(result, None), indent=1)
    marker = '\n "contexts": null'
    at = text.index(marker)
    head, tail = text[:at] + marker[:-4], text[at + len(marker):]
    out = (lambda piece: piece.encode("ascii")) if binary else (lambda piece: piece)
    yield out(head + ("[" if result.contexts else "[]"))
    for i, ctx in enumerate(result.decoded_contexts()):
        yield out(",\n  " if i else "\n  ")
        if ctx.decoded is None:
            yield out(json.dumps(dict(_undecoded(ctx), **_after_records(ctx)), indent=1).replace("\n", "\n  "))
        else:
            yield from json_object_chunks(ctx.decoded, _pointees(ctx), rows=rows, binary=binary, depth=2,
                                          schema=False, after=_after_records(ctx))
    yield out(("\n ]" if result.contexts else "") + tail + "\n")


def scan_text(result, records=False, colour=False):
    return "".join(scan_text_chunks(result, records=records, colour=colour))[:-1]


def scan_text_chunks(result, rows=1 << 15, records=False, colour=False):
    """The scan as text and a final newline, in pieces, a context at a time: a line for the target and
    the notes, then per context its summary (`summary.summary_lines`), or with `records` its state,
    evidence, shape, records table and notes. `colour`: ANSI colours for a terminal."""
    states = scan_counts(result)
    counted = ", ".join(f"{n} {state}" for state, n in states.items() if n or state == LIVE)
    n = len(result.contexts)
    yield (f"{result.source}: Wasmtime {result.wasmtime or 'unknown'} ({result.wasmtime_from}), "
              f"{n} component context{'s' * (n != 1)} listed ({counted})\n"
              + "".join(f"note: {note}\n" for note in result.notes))
    if not records:
        palette = Palette(colour)
        for ctx in result.decoded_contexts():
            yield "\n" + "".join(f"{line}\n" for line in summary_lines(ctx, palette))
        return
    for ctx in result.decoded_contexts():
        evidence = ctx.liveness.evidence if ctx.liveness is not None else []
        yield (f"\nVMComponentContext at {ctx.address:#x}: {ctx.state.upper()}\n"
                  + "".join(f"  {line}\n" for line in evidence)
                  + (f"shape: {ctx.shape_from}\n" if ctx.decoded is not None else ""))
        if ctx.decoded is not None:
            yield from decoded_table_chunks(ctx.decoded, ctx.points_to, rows)
        if ctx.notes:
            yield ("".join(f"  note: {note}\n" for note in ctx.notes))
