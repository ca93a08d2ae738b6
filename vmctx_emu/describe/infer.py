"""What `infer` found (`dumps.infer.infer_releases`' results) as text and as JSON.

The question asked goes with the answer: the dump's `size`, the `ptr_size`, `byte_order` and
whether the dump is of a debug build (`debug_assertions`); with `sidecar` (a dict: its `path`, the
parameters `taken` from it (sidecar key -> value), its `release` and `counts`, and the shape's `rank` from
`dumps.infer.shape_standing`, or `checked` False when the sidecar's release was not searched), what
the dump's sidecar said and where its shape stands.
"""

import json

from .options import count_option
from .schema import SCHEMA_VERSION

__all__ = ["infer_doc", "infer_json", "infer_text"]


def infer_doc(results, *, size, ptr_size, byte_order, debug_assertions=True, sidecar=None):
    """`infer --json`'s object: per release layout that fits, how many shapes and the listed ones with their
    cost; a `sidecar` object when the dump's sidecar was read."""
    extra = {} if sidecar is None else {"sidecar": {
        "path": str(sidecar["path"]), "taken": {key: f"{value:#x}" if key == "address" else value
                                               for key, value in sidecar["taken"].items()},
        "release": sidecar["release"],
        "counts": dict(sidecar["counts"]), "checked": sidecar.get("checked", True),
        "fits": sidecar.get("checked", True) and sidecar["rank"] is not None, "rank": sidecar["rank"] or None}}
    return {"schema_version": SCHEMA_VERSION, "size": size, "ptr_size": int(ptr_size), "byte_order": byte_order,
            "debug_assertions": debug_assertions, **extra,
            "releases": [{"layout": r.layout.id, "releases": r.range_text, "candidates": r.count,
                          "listed": len(r.candidates), "notes": r.notes,
                          "shapes": [{"counts": dict(c.counts), "cost": round(c.cost, 3)} for c in r.candidates]}
                         for r in results]}


def infer_json(results, **question):
    return json.dumps(infer_doc(results, **question), indent=1)


def _shape(counts):
    return " ".join(f"--{count_option(n)} {v}" for n, v in counts) or "(no counts)"


def sidecar_line(sidecar, results):
    """What was taken from the dump's sidecar, and where the shape it claims stands among the answers."""
    taken = ", ".join(f"{key} {value:#x}" if key == "address" else f"{key} {str(value).lower()}"
                      for key, value in sidecar["taken"].items())
    taken = f"took {taken}" if taken else "took nothing (the options gave it all)"
    shape = _shape(sidecar["counts"].items())
    rank = sidecar["rank"]
    if not sidecar.get("checked", True):
        standing = f"its shape ({sidecar['release']}: {shape}) was not checked: --wasmtime searched another release"
    elif rank is None:
        standing = f"its shape ({shape}) does not fit (the dump, or the count options given)"
    else:
        standing = (f"its shape is candidate {rank} of {results[0].count:,}" if rank else
                    f"its shape ({shape}) fits, past the listed candidates")
    return f"sidecar {sidecar['path']} ({sidecar['release']}): {taken}; {standing}"


def infer_text(results, *, size, ptr_size, byte_order, debug_assertions=True, sidecar=None):
    """One line for the question and how many layouts fit (and one for the sidecar, when one was read), then
    per layout its verdict, notes and shapes (as the count options that give them)."""
    build = "debug-initialized" if debug_assertions else "release-build"
    lines = [f"{size} bytes, ptr_size={int(ptr_size)}, {byte_order}-endian, {build}: "
             + ("no release layout has a shape that fits" if not results else
                "1 release layout fits" if len(results) == 1 else f"{len(results)} release layouts fit")]
    if sidecar is not None:
        lines.append(sidecar_line(sidecar, results))
    for r in results:
        verdict = "unambiguous" if r.count == 1 else f"ambiguous: {r.count:,} candidate shapes, most plausible first"
        lines.append(f"{r.layout.id} ({r.range_text}): {verdict}")
        lines += [f"  note: {note}" for note in r.notes]
        lines += ["  " + _shape(c.counts) for c in r.candidates]
        if r.count > len(r.candidates):
            lines.append(f"  ... {r.count - len(r.candidates):,} more (raise --limit or give known counts to "
                         "narrow them)")
    return "\n".join(lines)
