"""What `infer` found (`dumps.infer.infer_releases`' results) as text and as JSON.

The question asked goes with the answer: the dump's `size`, the `ptr_size`, `byte_order` and
whether the dump is of a debug build (`debug_assertions`).
"""

import json

from .options import count_option
from .schema import SCHEMA_VERSION

__all__ = ["infer_doc", "infer_json", "infer_text"]


def infer_doc(results, *, size, ptr_size, byte_order, debug_assertions=True):
    """`infer --json`'s object: per release layout that fits, how many shapes and the listed ones with their cost."""
    return {"schema_version": SCHEMA_VERSION, "size": size, "ptr_size": int(ptr_size), "byte_order": byte_order,
            "debug_assertions": debug_assertions,
            "releases": [{"layout": r.layout.id, "releases": r.range_text, "candidates": r.count,
                          "listed": len(r.candidates), "notes": r.notes,
                          "shapes": [{"counts": dict(c.counts), "cost": round(c.cost, 3)} for c in r.candidates]}
                         for r in results]}


def infer_json(results, **question):
    return json.dumps(infer_doc(results, **question), indent=1)


def infer_text(results, *, size, ptr_size, byte_order, debug_assertions=True):
    """One line for the question and how many layouts fit, then per layout its verdict, notes and shapes
    (as the count options that give them)."""
    build = "debug-initialized" if debug_assertions else "release-build"
    lines = [f"{size} bytes, ptr_size={int(ptr_size)}, {byte_order}-endian, {build}: "
             + ("no release layout has a shape that fits" if not results else
                "1 release layout fits" if len(results) == 1 else f"{len(results)} release layouts fit")]
    for r in results:
        verdict = "unambiguous" if r.count == 1 else f"ambiguous: {r.count:,} candidate shapes, most plausible first"
        lines.append(f"{r.layout.id} ({r.range_text}): {verdict}")
        lines += [f"  note: {note}" for note in r.notes]
        lines += ["  " + " ".join(f"--{count_option(n)} {v}" for n, v in c.counts) for c in r.candidates]
        if r.count > len(r.candidates):
            lines.append(f"  ... {r.count - len(r.candidates):,} more (raise --limit or give known counts to "
                         "narrow them)")
    return "\n".join(lines)
