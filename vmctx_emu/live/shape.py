"""A context's shape and release from what Wasmtime's `ComponentInstance` keeps around it: its copy of
`VMComponentOffsets` and its own address; failing a copy, the shapes `infer` finds in the bytes.

`ComponentInstance` is `#[repr(C)]`: an id, a copy of the `VMComponentOffsets`
the context was laid out with (the u32 counts in struct order, then the
offset of every region Rust keeps a member for (from v49 the header's are
constants, not members), then the size), other fields, and the context last. The copy is the
runtime's own record of the shape, so a scan trusts it only when our
calculator reproduces every stored offset.

A freed `ComponentInstance` keeps its bytes, but the allocator writes its
free-list links over the first 16 to 32 bytes of the block: the id and the
first counts. The offsets after them survive, and they fix every count, so
the shape is solved from them exactly (`StoredCopy.clobbered` names the
counts whose stored words disagree); that is evidence of a free, never a
reason to guess.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import LayoutOverflowError, UnreadableMemoryError, VMCtxEmuError
from ..layouts.fields import U32_MAX, Align
from ..layouts.releases import LAYOUTS, SEED, Resolution
from ..layouts.types import resolve

__all__ = ["StoredCopy", "find_copy", "self_pointer_at", "inferred_shape", "layout_family", "stored_sizes",
           "offsets_for", "per_shape", "stored_words", "context_size", "STORED_WINDOW", "MAX_CONTEXT_BYTES", "SELF_POINTER_AT", "FREE_LINKS", "ID_BYTES"]

PTR = 8
ORDER = "little"
# How far before a context the stored `VMComponentOffsets` copy is looked for.
STORED_WINDOW = 512
# Counts above this are not a component's (a stored copy is u32 counts of real arrays).
PLAUSIBLE_COUNT = 1 << 24
# The most bytes a context whose shape is taken from its stored copy is read and decoded as. A copy is
# bytes of the target, so its counts are a claim: 1 MiB holds 32768 func refs or 65536 lowerings, far
# more than a component has functions in practice (hundreds of imports, each a lowering and a trampoline),
# while reading, decoding and printing that much stays within a scan's bounds (2 s, 256 MB; issue 20).
MAX_CONTEXT_BYTES = 1 << 20
# How many bytes at the start of a freed block glibc's free writes: fd/bk (tcache next/key), and
# fd_nextsize/bk_nextsize in a large bin. The block begins with ComponentInstance's u32 id, so the copy
# starts ID_BYTES into it: only its words before FREE_LINKS - ID_BYTES can be a free's.
FREE_LINKS = 32
ID_BYTES = 4
# When no stored copy is found, `infer` tries the sizes a copy seems to end with: a non-decreasing run
# of at least STORED_DISTINCT values from at most STORED_FIRST_MAX (the first stored offset is magic's 0
# or, v49+, the flags' offset). At most INFER_SIZES_TRIED sizes are tried and INFER_LISTED shapes listed.
STORED_DISTINCT = 3
STORED_FIRST_MAX = 64
INFER_SIZES_TRIED = 3
INFER_LISTED = 3
# Where `ComponentInstance` keeps the context's own address, relative to the context, from each
# release on (measured live in the wheels 33.0.0-51.0.0; unknown before 33, whose runtime has no C API).
SELF_POINTER_AT = ((33, -72), (34, -128), (35, -16))


def self_pointer_at(releases):
    """Where the releases' `ComponentInstance` keeps the context's address; None when unknown or not one place."""
    found = set()
    for release in releases:
        major = int(release.split(".")[0]) if release.split(".")[0].isdigit() else 0
        known = [at for first, at in SELF_POINTER_AT if major >= first]
        found.add(known[-1] if known else None)
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class StoredCopy:
    """A stored `VMComponentOffsets` copy found before a context.

    `at` is its address; `counts` the shape its offsets fix; `clobbered`
    the count names whose stored u32 disagrees, with their addresses
    (empty: the copy is intact); `words` how many u32 it spans.
    """

    at: int
    counts: dict
    clobbered: tuple
    words: int

    @property
    def intact(self):
        return not self.clobbered

    def __repr__(self):
        clobbered = ", ".join(f"({name!r}, {at:#x})" for name, at in self.clobbered)
        return (f"StoredCopy(at={self.at:#x}, counts={self.counts!r}, clobbered=({clobbered}"
                f"{',' if len(self.clobbered) == 1 else ''}), words={self.words!r})")

    def describe(self, ctx):
        where = f"VMComponentOffsets stored at ctx-{ctx - self.at}"
        n = len(self.counts)
        if self.intact:
            return f"{where} ({n} counts, {self.words - n} offsets, all reproduced)"
        names = ", ".join(f"{name} at ctx-{ctx - at}" for name, at in self.clobbered)
        return (f"{where}: its offsets are reproduced, but {len(self.clobbered)} of its {n} counts are overwritten "
                f"({names}); the counts are the ones its offsets fix")


def _stored_offsets(layout, offsets):
    """What Rust stores after the counts: the offset of every region it keeps a member for, then the size."""
    stored = [r.offset for r, f in zip(offsets.regions(), layout.declared_fields()) if f.offset_stored]
    return stored + [offsets.size_of_vmctx()]


@lru_cache(maxsize=64)
def _plan(layout):
    """(first stored word, number of stored words, [(count name, elem size, index of its region's offset)])."""
    empty = offsets_for(layout)
    kept = [r for r, f in zip(empty.regions(), layout.declared_fields()) if f.offset_stored]
    stored = _stored_offsets(layout, empty)
    steps = [(r.count_name, r.elem_size, i) for i, r in enumerate(kept) if r.count_name]
    return stored[0], len(stored), steps


_PER_SHAPE = {}
_PER_SHAPE_KEPT = 4096


def per_shape(build, layout, counts=(), *more):
    """`build(layout, counts, *more)`, made once per (build, layout, shape, more): a scan asks the same few
    shapes the same questions for every context, and a layout's offsets take as long as the rest of a
    context's checks."""
    key = (build, id(layout), tuple(counts.items() if isinstance(counts, dict) else counts), more)  # (order: a miss)
    found = _PER_SHAPE.get(key)
    if found is None:
        if len(_PER_SHAPE) >= _PER_SHAPE_KEPT:
            _PER_SHAPE.clear()
        # The layout is kept with what was built, so the id in the key names it for as long as the entry lives.
        found = _PER_SHAPE[key] = (layout, build(layout, dict(counts), *more))
    return found[1]


def _offsets(layout, counts):
    return layout.offsets(PTR, **counts)


def offsets_for(layout, counts=()):
    """`layout.offsets(PTR, **counts)`, once per shape."""
    return per_shape(_offsets, layout, counts)


@lru_cache(maxsize=64)
def _count_names(layout):
    return layout.count_names


def _offsets_of(layout, counts):
    try:
        return offsets_for(layout, counts)
    except (LayoutOverflowError, VMCtxEmuError):
        return None


@lru_cache(maxsize=4096)
def _solve(layout, stored):
    """The counts whose offsets are exactly `stored` (a tuple), or None: each count from its first region's extent.

    Regions are kept in declaration order, so a region's count changes no
    offset before the next region's: each is fixed in turn and checked on
    the offsets so far.
    """
    _, _, steps = _plan(layout)
    counts = dict.fromkeys(layout.count_names, 0)
    done = set()
    for name, elem, i in steps:
        if name in done:
            continue
        done.add(name)
        extent = stored[i + 1] - stored[i]
        if extent < 0:
            return None
        # Alignment padding before the next region may add up to 15 bytes to this region's extent.
        for count in sorted({extent // elem, max(0, (extent - 15) // elem)}, reverse=True):
            counts[name] = count
            offsets = _offsets_of(layout, counts)
            if offsets is not None and _stored_offsets(layout, offsets)[: i + 2] == list(stored[: i + 2]):
                break
        else:
            return None
    offsets = _offsets_of(layout, counts)
    if offsets is None or tuple(_stored_offsets(layout, offsets)) != stored:
        return None
    return counts


@lru_cache(maxsize=64)
def _walk(layout):
    """The layout's declaration as steps of plain ints: (align, 0, None, False) per `align`, (0, elem size,
    count index or None, offset stored) per field: what `stored_words` walks instead of building regions."""
    names = _count_names(layout)
    steps = []
    for entry in layout.fields:
        if isinstance(entry, Align):
            steps.append((resolve(entry.to, PTR), 0, None, False))
        else:
            steps.append((0, entry.elem_type.size_for(PTR), None if entry.count is None else names.index(entry.count),
                          entry.offset_stored))
    return tuple(steps)


def stored_words(layout, counts):
    """What a `ComponentInstance` of `counts` (u32 in `count_names` order) stores after them (the offset of
    every region kept as a member, then the size), walked in plain ints: a scan of thousands of contexts of
    distinct shapes checks each one's copy without laying out the regions (`offsets_for`, the same numbers
    at ~40 times the cost). None when the u32 arithmetic overflows, as `lay_out` refuses."""
    cursor, out = 0, []
    for align, elem, count, stored in _walk(layout):
        if align:
            cursor = (cursor + align - 1) & -align
        else:
            if stored:
                out.append(cursor)
            cursor += elem * (1 if count is None else counts[count])
        if cursor > U32_MAX:
            return None
    out.append(cursor)
    return out


def context_size(layout, counts):
    """A context's size for `counts` (a dict), from `stored_words`; None when it overflows."""
    words = stored_words(layout, [counts.get(name, 0) for name in _count_names(layout)])
    return None if words is None else words[-1]


@lru_cache(maxsize=4096)
def _reproduces(layout, counts, stored):
    """Whether our calculator turns `counts` (u32 in struct order) into exactly the `stored` offsets; asked
    once per shape, though a scan asks for every context."""
    if any(c >= PLAUSIBLE_COUNT for c in counts):
        return False
    return stored_words(layout, counts) == list(stored)


def find_copy(window, window_start, layout, ctx):
    """The stored copy nearest the context in `window` (the bytes just before it), or None.

    An intact copy is one whose counts our calculator turns into exactly its
    stored offsets. Failing that, a copy whose offsets alone fix the counts
    (some stored counts overwritten) is returned with them named.
    """
    words = np.frombuffer(window[: len(window) // 4 * 4], "<u4")
    first, length, _ = _plan(layout)
    names = _count_names(layout)
    n = len(names)
    solved = None
    for q in np.flatnonzero(words[n : len(words) - length + 1] == first)[::-1].tolist():
        counts = words[q : q + n]
        stored = words[q + n : q + n + length]
        if _reproduces(layout, tuple(counts.tolist()), tuple(stored.tolist())):
            return StoredCopy(window_start + 4 * q, dict(zip(names, counts.tolist())), (), n + length)
        if solved is None:
            solved = _solved_copy(words, q, n, stored, layout, window_start)
    return solved


def _solved_copy(words, q, n, stored, layout, window_start):
    if (np.diff(stored.astype(np.int64)) < 0).any() or int(stored[-1]) % PTR or stored[-1] >= PLAUSIBLE_COUNT:
        return None
    counts = _solve(layout, tuple(stored.tolist()))
    if counts is None:
        return None
    clobbered = tuple((name, window_start + 4 * (q + k)) for k, name in enumerate(layout.count_names)
                      if int(words[q + k]) != counts[name])
    # Counts overwritten beyond where a free writes are damage of another kind: no shape from such a copy.
    if any(at >= window_start + 4 * q + FREE_LINKS - ID_BYTES for _, at in clobbered):
        return None
    return StoredCopy(window_start + 4 * q, counts, clobbered, n + len(stored))


def layout_family(windows):
    """(Resolution, how) from the layouts whose calculator reproduces every stored copy in `windows`
    ([(context address, (window start, bytes before it))]), or None."""
    fitting = []
    for layout in LAYOUTS:
        if layout is SEED:
            continue
        copies = [find_copy(w, start, layout, address) for address, (start, w) in windows]
        found = [c for c in copies if c is not None]
        if found and all(c is not None for c in copies) and any(c.intact for c in found):
            fitting.append(layout)
    if not fitting:
        return None
    releases = tuple(r for layout in fitting for r in layout.releases)
    ids = sorted({layout.id for layout in fitting}, key=lambda i: (len(i), i))
    newest = fitting[-1]
    text = (f"{'/'.join(ids)}: v{releases[0]} - v{releases[-1]}" if len(releases) > 1 else f"v{releases[0]}")
    resolution = Resolution(
        f"{releases[0]} - {releases[-1]}", newest.last, newest, "family",
        f"the release is one of {text} (the layouts that reproduce every stored offset of its contexts); "
        f"decoded as {newest.last}", releases)
    return resolution, f"stored VMComponentOffsets copies ({len(windows)} contexts): {text}"


def inferred_shape(src, memory, layout, address, window):
    """(counts, how, guessed) from `infer` over the size a stored copy ends with, else (None, why, None).

    `guessed` is the text of the `guessed_shape` anomaly the decoded context carries.
    """
    from ..dumps.infer import InferError, infer

    if window is None:
        return None, ("shape not recovered: the bytes before it, where its stored VMComponentOffsets copy would "
                      "be, cannot be read: not decoded"), None
    why = (f"no copy of VMComponentOffsets in the {len(window[1])} bytes before it whose offsets our "
           f"{layout.name} calculator reproduces")
    lost = f"shape not recovered: {why}"
    room = memory.find(address).end - address
    sizes = [size for size in stored_sizes(np.frombuffer(window[1][: len(window[1]) // 4 * 4], "<u4"),
                                           offsets_for(layout).size_of_vmctx()) if size <= room]
    tried = []
    for size in sizes[:INFER_SIZES_TRIED]:
        try:
            found = infer(src.read(address, size), PTR, ORDER, wasmtime=layout, address=address,
                          debug_assertions=False, limit=INFER_LISTED, pointers=memory.pointers)
        except (UnreadableMemoryError, InferError) as e:
            tried.append(f"{size} bytes: {e}")
            continue
        if found.count:
            best = dict(found.candidates[0].counts)
            how = f"inferred ({why}): the only {layout.name} shape of the {size} bytes its stored copy ends with"
            if found.count > 1:
                others = "; ".join(", ".join(f"{k}={v}" for k, v in c.counts if v) or "all counts 0"
                                   for c in found.candidates[1:])
                how = (f"inferred ({why}): the most plausible of {found.count} {layout.name} shapes of the "
                       f"{size} bytes its stored copy ends with; next: {others}")
            guessed = (f"shape guessed, not stored: {found.count} candidate shape"
                       f"{'s' * (found.count != 1)} fit the {size} bytes; the most plausible is decoded")
            return best, how, guessed
        tried.append(f"no {layout.name} shape is {size} bytes")
    if not sizes:
        return None, f"{lost}; no stored size to infer it from: not decoded", None
    return None, f"{lost}; infer: {', '.join(tried)}: not decoded", None


def stored_sizes(words, smallest):
    """Sizes a stored `VMComponentOffsets` copy may end with, nearest the context first.

    Read without trusting our layout: a copy's offsets run non-decreasing
    from a small first one (magic's 0, or the flags' offset) through several
    distinct values to the size, a multiple of the pointer size; the word
    after it is no offset (smaller, or a pointer).
    """
    words = words.tolist()
    out = []
    for i in range(len(words) - 2, 0, -1):
        size = words[i]
        if (size in out or not smallest <= size < PLAUSIBLE_COUNT or size % PTR
                or size <= words[i + 1] < PLAUSIBLE_COUNT):
            continue
        j = i
        while j > 0 and words[j - 1] <= words[j]:
            j -= 1
        if words[j] <= STORED_FIRST_MAX and len(set(words[j : i + 1])) >= STORED_DISTINCT:
            out.append(size)
    return out
