"""The stored `VMComponentOffsets` copy before a context, and the liveness verdict built on it, for every layout.

The copy is written here from each layout's own regions (independently of `stored.py`): the id, the
counts, the offset of every region Rust keeps a member for, the size. A free overwrites the block's first
16 to 32 bytes; the counts it hits are solved from the offsets that survive, exactly; damage anywhere
else gives no shape. Real copies are checked live in test_live_scan and the release suite.
"""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu.layouts.releases import LAYOUTS, SEED
from vmctx_emu.live.heap import Allocation
from vmctx_emu.live.liveness import FREED, LIVE, UNKNOWN, judge
from vmctx_emu.errors import LayoutOverflowError
from vmctx_emu.live.shape import FREE_LINKS, StoredCopy, context_size, find_copy, stored_words

LAYOUTS_WITH_COPIES = [layout for layout in LAYOUTS if layout is not SEED]
CTX = 0x5555_0000_1000
USER = CTX - 256  # where the ComponentInstance (its id, then the copy) begins, in these windows


def copy_words(layout, counts):
    """The u32 words of the copy Rust stores for `counts`."""
    offsets = layout.offsets(8, **counts)
    stored = [r.offset for r, f in zip(offsets.regions(), layout.declared_fields()) if f.offset_stored]
    return [counts[n] for n in layout.count_names] + stored + [offsets.size_of_vmctx()]


def window(layout, counts, filler=0xA5):
    """The 512 bytes before CTX: filler, the id at USER, the copy right after it, filler to the context."""
    data = bytearray([filler]) * 512
    start = CTX - 512
    words = copy_words(layout, counts)
    struct.pack_into(f"<I{len(words)}I", data, USER - start, 7, *words)
    return data, start


@st.composite
def shapes(draw):
    layout = draw(st.sampled_from(LAYOUTS_WITH_COPIES))
    counts = {n: draw(st.integers(0, 6)) for n in layout.count_names}
    return layout, counts


@settings(max_examples=300, deadline=None)
@given(shape=shapes())
def test_an_intact_copy_gives_its_counts(shape):
    layout, counts = shape
    data, start = window(layout, counts)
    found = find_copy(bytes(data), start, layout, CTX)
    assert found is not None and found.intact and found.counts == counts and found.at == USER + 4


@settings(max_examples=300, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), counts=st.lists(st.sampled_from([0, 1, 2, 7, 1 << 16, 1 << 24, 1 << 28]),
                                                        min_size=12, max_size=12))
def test_the_plain_walk_stores_what_the_calculator_lays_out(layout, counts):
    """`stored_words` (a scan's check of every copy) agrees with `layout.offsets`, overflow included."""
    counts = dict(zip(layout.count_names, counts))
    try:
        words = copy_words(layout, counts)[len(counts):]
    except LayoutOverflowError:
        words = None
    assert stored_words(layout, list(counts.values())) == words
    assert context_size(layout, counts) == (None if words is None else words[-1])


@settings(max_examples=300, deadline=None)
@given(shape=shapes(), links=st.sampled_from([16, 32]), junk=st.binary(min_size=32, max_size=32))
def test_counts_a_free_overwrote_are_solved_from_the_offsets(shape, links, junk):
    """fd/bk (tcache next/key) over the block's first 16 bytes, fd/bk_nextsize too in a large bin."""
    layout, counts = shape
    data, start = window(layout, counts)
    data[USER - start:USER - start + links] = junk[:links]
    found = find_copy(bytes(data), start, layout, CTX)
    if USER + 4 + 4 * len(layout.count_names) < USER + links:
        # The links reach the stored offsets too (a release with few counts, a large bin): nothing to solve
        # from, so no shape; never another one.
        assert found is None or found.counts == counts
        return
    assert found is not None and found.counts == counts
    hit = {name for k, name in enumerate(layout.count_names) if USER + 4 + 4 * k < USER + links}
    assert {name for name, _ in found.clobbered} <= hit
    assert found.intact == (not found.clobbered)
    assert all(at < USER + FREE_LINKS for _, at in found.clobbered)


@pytest.mark.parametrize("layout", LAYOUTS_WITH_COPIES, ids=[f"{lay.id}-{lay.first}" for lay in LAYOUTS_WITH_COPIES])
def test_a_word_damaged_past_the_free_links_gives_no_shape(layout):
    """A count or an offset wrong where no free writes is damage of another kind: no shape, never another."""
    counts = {n: 1 for n in layout.count_names}
    data, start = window(layout, counts)
    at = USER + FREE_LINKS  # the first word of the copy a free does not write
    (word,) = struct.unpack_from("<I", data, at - start)
    struct.pack_into("<I", data, at - start, word + 3)
    found = find_copy(bytes(data), start, layout, CTX)
    assert found is None, found


# --------------------------------------------------------------------------- the verdict

def allocation(state, chunk=USER - 16):
    return Allocation(state, None if state == "unknown" else chunk, 0x130, "glibc heap", f"({state})")


INTACT = StoredCopy(USER + 4, {"num_lowerings": 1}, (), 21)
CLOBBERED = StoredCopy(USER + 4, {"num_lowerings": 1}, (("num_lowerings", USER + 4),), 21)
MERGED = USER - 16 - 0x200  # a free chunk that took in the block (backward consolidation): links far away
STORE = 0x5555_0000_9000

VERDICTS = [
    # id, allocation, copy, self pointer, store's allocation, verdict, a word of the last evidence line
    ("in use, all consistent", allocation("in use"), INTACT, True, allocation("in use"), LIVE, "store context"),
    ("in use, self pointer kept nowhere known", allocation("in use"), INTACT, None, None, LIVE, "stored offsets"),
    ("in use, copy overwritten", allocation("in use"), CLOBBERED, True, None, UNKNOWN, "conflict"),
    ("in use, no copy", allocation("in use"), None, True, None, UNKNOWN, "conflict"),
    ("in use, self pointer elsewhere", allocation("in use"), INTACT, False, None, UNKNOWN, "conflict"),
    ("in use, its store freed", allocation("in use"), INTACT, True, allocation("free"), UNKNOWN, "conflict"),
    ("free in a bin", allocation("free"), CLOBBERED, True, None, FREED, "self pointer"),
    ("merged into an earlier free chunk", allocation("free", MERGED), INTACT, True, None, FREED, "self pointer"),
    ("free in a bin, copy untouched", allocation("free"), INTACT, True, None, UNKNOWN, "conflict"),
    ("in a tcache", allocation("tcache"), CLOBBERED, True, None, FREED, "self pointer"),
    ("reused by another block", allocation("reused"), None, None, None, FREED, "stored offsets"),
    ("another allocator", allocation("unknown"), INTACT, True, None, UNKNOWN, "self pointer"),
    ("another allocator, copy overwritten", allocation("unknown"), CLOBBERED, True, None, UNKNOWN, "as a free"),
]


@pytest.mark.parametrize("where, copy, own, store, verdict, last",
                         [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_the_verdict_and_its_evidence(where, copy, own, store, verdict, last):
    found = judge(CTX, where, copy, own, None if store is None else (STORE, store))
    assert found.state == verdict, found.evidence
    assert found.evidence[0] == f"allocator: {where.why}"
    assert last in found.evidence[-1], found.evidence
