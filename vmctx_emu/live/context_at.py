"""One context of a scan, by its address: what `scan --context ADDR` and the debuggers' `vmctx ADDR` show.

The scan has decided the release (the target's Wasmtime image) and the shape (the
`VMComponentOffsets` copy Wasmtime stores before the context); this only picks the
context out of its result, or says why there is none at that address.
"""

from dataclasses import replace

from ..errors import ContextNotFoundError
from .shape import offsets_for

__all__ = ["context_at"]


def context_at(result, address):
    """`result` (a `ScanResult`) listing only the context at `address`, with a note when its shape is not
    from a stored copy; `ContextNotFoundError` when the scan found none there."""
    contexts = [c for c in result.contexts if c.address == address]
    if not contexts:
        found = [c.address for c in result.contexts]
        inside = next((c.address for c in result.contexts if c.counts is not None
                       and c.address < address < c.address + offsets_for(c.layout, c.counts).size_of_vmctx()), None)
        listed = ", ".join(f"{a:#x}" for a in found[:8]) + (", ..." if len(found) > 8 else "")
        where = (f"; {address:#x} is inside the context at {inside:#x} (+{address - inside:#x})" if inside is not None
                 else f"; the contexts it found: {listed}" if found else "; it found none")
        raise ContextNotFoundError(f"{result.source}: the scan finds no component context at {address:#x}{where}",
                                   address=address, source=result.source, found=found, inside=inside)
    [ctx] = contexts
    notes = list(result.notes)
    if ctx.data is None:
        notes.append(f"the context at {address:#x} is not decoded: its shape is unknown (its notes say why); "
                     "give its counts to decode it")
    elif ctx.guessed:
        notes.append(f"the context at {address:#x} has no stored VMComponentOffsets copy our calculator reproduces: "
                     "its shape is a guess (the guessed_shape anomaly); give its counts to decode it as you know it")
    return replace(result, contexts=contexts, notes=notes)
