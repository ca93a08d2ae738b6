"""Is a context found in memory live, freed, or unknown? Decided from evidence, each piece said in words.

The evidence, strongest first:

* the allocator: glibc's record of the block holding the context (`heap.Allocation`):
  free, in a tcache, or reused by another allocation means freed; in use means
  the block is allocated (not yet that it is a `ComponentInstance`);
* the stored `VMComponentOffsets` copy (`stored.StoredCopy`): intact, or its
  first counts overwritten as a free's links overwrite them;
* the self pointer `ComponentInstance` keeps (whether it still names the context);
* the store context the header names: in freed memory means its store is gone.

A context is *live* only when the allocator says in use and nothing speaks
against it; *freed* when the allocator says free (with nothing in the bytes
that a free could not have left); *unknown* otherwise, with the reasons, so
a reader sees why (another allocator, evidence that conflicts).
"""

from dataclasses import dataclass, field

from .shape import FREE_LINKS, ID_BYTES

__all__ = ["Liveness", "judge", "LIVE", "FREED", "UNKNOWN"]

LIVE, FREED, UNKNOWN = "live", "freed", "unknown"


@dataclass
class Liveness:
    """`state` (live, freed, unknown) and `evidence`: one line per fact weighed, in the order weighed."""

    state: str
    evidence: list = field(default_factory=list)


def judge(ctx, allocation, copy, own, store):
    """The Liveness of the context at `ctx`.

    `allocation` is glibc's `Allocation` for the context's bytes; `copy` the
    stored copy found (None: none); `own` whether the self pointer names the
    context (None: where it is kept is not known); `store` (address,
    `Allocation`) of the store context its header names, or None.
    """
    evidence = [f"allocator: {allocation.why}"]
    if copy is None:
        evidence.append("stored offsets: no copy of VMComponentOffsets before the context")
    else:
        evidence.append(f"stored offsets: {copy.describe(ctx)}")
    if own is not None:
        evidence.append("self pointer: " + ("holds the context's address" if own else "does not hold the context's address"))
    if store is not None:
        address, where = store
        evidence.append(f"store context {address:#x}: {where.why}")
    store_freed = store is not None and store[1].state in ("free", "tcache")
    clobbered_by_free = copy is not None and not copy.intact and _within_links(copy, allocation)

    if allocation.state in ("free", "tcache", "reused"):
        if allocation.state != "reused" and copy is not None and copy.intact and _links_hit_copy(copy, allocation):
            evidence.append("conflict: a free writes its links over the copy's first counts, yet they are intact")
            return Liveness(UNKNOWN, evidence)
        return Liveness(FREED, evidence)
    if allocation.state == "in use":
        if copy is not None and copy.intact and own is not False and not store_freed:
            return Liveness(LIVE, evidence)
        if copy is None:
            evidence.append("conflict: the block is in use but holds no stored offsets copy")
        elif not copy.intact:
            evidence.append("conflict: the block is in use but the copy's first counts are overwritten"
                            + (" where a free writes its links (freed, then allocated again?)" if clobbered_by_free
                               else ""))
        elif own is False:
            evidence.append("conflict: the block is in use but its self pointer names another address")
        else:
            evidence.append("conflict: the block is in use but the store context it names lies in freed memory")
        return Liveness(UNKNOWN, evidence)
    if clobbered_by_free or (copy is not None and not copy.intact):
        evidence.append("the copy's first counts are overwritten, as a free overwrites them, but the allocator "
                        "cannot confirm it")
    if store_freed:
        evidence.append("the store context it names lies in freed memory")
    return Liveness(UNKNOWN, evidence)


def _within_links(copy, allocation):
    """Whether every overwritten count lies where a free writes its links (the block's first 32 bytes)."""
    if allocation.user is None:
        return all(at < copy.at - ID_BYTES + FREE_LINKS for _, at in copy.clobbered)
    return all(allocation.user <= at < allocation.user + FREE_LINKS for _, at in copy.clobbered)


def _links_hit_copy(copy, allocation):
    """Whether the links a free writes at the start of the free chunk land on the copy's count words."""
    user = allocation.user
    if user is None:
        return False
    counts_end = copy.at + 4 * len(copy.counts)
    return user < counts_end and copy.at < user + 16
