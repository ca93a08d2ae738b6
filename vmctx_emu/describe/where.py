"""`where`'s answers (`live.where.Location`s from `scan(where=...)`) as text and as JSON.

Text names symbols short (generic arguments elided, `symbols.short_name`); JSON keeps the full name.
"""

import json

from .schema import SCHEMA_VERSION
from .symbols import short_name

__all__ = ["where_doc", "where_json", "where_text"]

LISTED = 4  # contexts named per field before "+N more"

JIT_NOTE = ("JIT code has no symbols: this is the nearest entry point a context knows at or below the "
            "address, not necessarily the function holding it")


def _mapping(m):
    if m is None:
        return None
    return {"start": f"{m.start:#x}", "end": f"{m.end:#x}", "perms": m.perms, "path": m.path,
            "offset": f"{m.offset:#x}"}


def _fields(fields):
    return [{"context": f"{f.context:#x}", "field": f.label} for f in fields]


def _location_doc(loc):
    entry = loc.entry
    return {"address": f"{loc.address:#x}", "mapping": _mapping(loc.mapping), "named": loc.named,
            "inside": None if loc.inside is None else _fields([loc.inside])[0],
            "held_by": _fields(loc.held_by),
            "entry": None if entry is None else {"address": f"{entry.value:#x}", "distance": entry.distance,
                                                 "held_by": _fields(entry.held_by)}}


def where_doc(result):
    """`where --json`'s object: the scan's source and release, and one object per address."""
    return {"schema_version": SCHEMA_VERSION, "source": result.source,
            "wasmtime": {"version": result.wasmtime, "from": result.wasmtime_from},
            "addresses": [_location_doc(loc) for loc in result.located or ()], "notes": list(result.notes)}


def where_json(result):
    return json.dumps(where_doc(result), indent=1)


def _grouped(fields):
    """"lowerings[0].callee of 3 contexts (0x…, 0x…, 0x…)", one phrase per label."""
    by_label = {}
    for f in fields:
        by_label.setdefault(f.label, []).append(f.context)
    phrases = []
    for label, contexts in by_label.items():
        shown = ", ".join(f"{c:#x}" for c in contexts[:LISTED])
        more = f", +{len(contexts) - LISTED} more" if len(contexts) > LISTED else ""
        whose = f"the context at {shown}" if len(contexts) == 1 else f"{len(contexts)} contexts ({shown}{more})"
        phrases.append(f"{label} of {whose}")
    return "; ".join(phrases)


def _where_in(m):
    if m is None:
        return ""
    what = m.path or "anonymous"
    return f" ({what} {m.perms} {m.start:#x}-{m.end:#x})"


def where_text(result):
    """One block per address: what holds it, the context field it is inside, who points at it, the entry point."""
    lines = [f"{result.source}: Wasmtime {result.wasmtime or 'unknown'} ({result.wasmtime_from}), "
             f"{len(result.contexts)} component context{'s' * (len(result.contexts) != 1)} listed"]
    for loc in result.located or ():
        lines.append("")
        lines.append(f"{loc.address:#x}: {short_name(loc.named)}{_where_in(loc.mapping)}")
        if loc.inside is not None:
            lines.append(f"  inside the context at {loc.inside.context:#x}: {loc.inside.label}")
        if loc.held_by:
            lines.append(f"  held by {_grouped(loc.held_by)}")
        entry = loc.entry
        if entry is not None and not (entry.distance == 0 and loc.held_by):
            lines.append(f"  nearest entry point: {entry.value:#x} + {entry.distance:#x}, {_grouped(entry.held_by)}")
            if loc.named == "JIT code":
                lines.append(f"    {JIT_NOTE}")
        if loc.inside is None and not loc.held_by and entry is None:
            lines.append("  no context found holds, contains or points below it" + (
                ": no context's code pointer lands in this JIT mapping (contexts name only their trampolines, "
                "lowered host functions and func refs, not the core modules' own functions)"
                if loc.named == "JIT code" else ""))
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
