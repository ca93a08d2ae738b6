"""Which release layouts and component shapes could have produced a dump, most plausible first.

One engine for every release, read off the declaration. After the header and
the flag globals a context is its release's arrays in order, and every element
is either *fresh* (as `initialize_vmctx` leaves it: in a debug build the
poisoned sub-fields `INVALID_PTR`, everything else zero) or *set* (as its
runtime setter leaves it: no `INVALID_PTR`, non-null where the setter never
writes null, `vmctx` the context's own address when known and no other
pointer equal to it, untouched sub-fields and padding zero). So for each array and word the dump says how
many valid elements start there, and one backward numpy pass per array counts
the ways the remaining arrays can fill the dump from every word. Listing then
walks only branches that end in a fit. A count two arrays share
(`num_lowerings` up to v11) is tried one value at a time; where one setter
writes both (`set_lowering`), element i is fresh in both or set in both.

The work is bounded: every pass over the words (reading the elements once for
every instance count tried, counting, ranking) is charged to one budget per
call (`WORK_BUDGET`, shared by every release `infer_releases` tries), and a
dump past `INFER_MAX_BYTES` is refused at once; past the budget
`TooManyCandidatesError` ("too many candidates") asks for the counts or the
release that narrow the search, so any dump up to 1 MB answers or stops in
about two seconds.

Candidates are ranked by how alike neighbouring elements of each array are
(the sum of log2 |difference| of their words): a runtime fills one array from
one kind of source (one host trampoline, one heap, one core instance), so an
array boundary falls where values jump. Ties keep the fewest non-empty arrays.
"""

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from ..checks import BYTE_ORDER_CHAR, check_bool, check_byte_order, check_counts, check_int, check_ptr
from ..constants import VMCOMPONENT_MAGIC
from ..errors import ArgumentTypeError, InferError, TooManyCandidatesError
from ..layouts.ptr import EMULATED_PTR_SIZES, as_ptr_size, invalid_ptr
from ..layouts.releases import LAYOUTS, resolve_wasmtime
from ..memory.magic import magic_mismatch_message

__all__ = ["InferError", "TooManyCandidatesError", "Candidate", "Inference", "infer", "infer_releases",
           "consistent_layouts", "shape_standing", "MAX_FLAG_RUN_TRIED", "RANKED", "WORK_LIMIT", "WORK_BUDGET", "INFER_MAX_BYTES"]

# Beyond this many flag-looking globals only the longest run is tried.
MAX_FLAG_RUN_TRIED = 64
# Candidates listed by default; the count is always exact.
RANKED = 1000
# Word-steps the shared count's values may take in one release: past it, ask for that count.
WORK_LIMIT = 50_000_000
# Work units (about 25 ns each) one call may spend, `infer` or `infer_releases` over every release:
# past it, `TooManyCandidatesError` asks for the counts that narrow the search. Any dump up to
# 1 MB answers or stops in about 2 s.
WORK_BUDGET = 80_000_000
# Units per word: reading one array's elements, one counting step over int64 and over exact Python
# ints (counts past 2**62), each count considered while ranking. Per call (numpy's fixed costs):
# reading an array, one counting step, expanding one ranking node.
READ_UNITS, STEP_UNITS, OBJECT_STEP_UNITS, RANK_UNITS = 2, 5, 12, 1
READ_CALL_UNITS, STEP_CALL_UNITS, RANK_CALL_UNITS = 5_000, 20_000, 1_000
# Per step of the ranking search (one heap entry taken), and per candidate listed (built, then rendered as a
# line or a JSON object by the caller): with `--limit 4294967295` these, not the counting, are the cost.
RANK_POP_UNITS, LIST_UNITS = 100, 600
# Heap entries taken between two charges: one call per entry would cost as much as the entry.
RANK_POPS_CHARGED = 256
# Past this size reading a dump's elements alone would spend the budget: refused at once (and what
# a caller reading a file for infer should read at most: `read_dump_bytes(path, INFER_MAX_BYTES)`).
INFER_MAX_BYTES = 4 << 20

FRESH, SET = 1, 2


class _Budget:
    """The word-steps one call may still take; every table, state pass and ranking step is charged."""

    def __init__(self, limit, size):
        self.left = limit
        self.limit = limit
        self.size = size

    def charge(self, units, layout, doing):
        self.left -= int(units)
        if self.left < 0:
            reason = (f"too many candidates: {layout.name}: {doing} in this {self.size:,}-byte dump would take "
                      f"more than the {self.limit:,} work units infer may spend")
            raise TooManyCandidatesError(f"{reason}; give the counts you know (counts=) or the release (wasmtime=)",
                                         reason=reason, asks=True)


@dataclass(frozen=True)
class Candidate:
    """One shape that explains the dump: its counts (the layout's `count_names` order) and its cost."""

    layout: object
    counts: tuple
    cost: float

    @property
    def component(self):
        return self.layout.component(**dict(self.counts))


@dataclass
class Inference:
    """Every shape of one release layout that fits: `count` of them, the cheapest `candidates` in order."""

    layout: object
    count: int
    candidates: list
    notes: list
    last: object = None  # the last of consecutive variants of one layout id with the same answer

    @property
    def range_text(self):
        """The releases this answer covers, variants with the same bytes merged."""
        if self.last is None or self.last is self.layout:
            return self.layout.range_text
        return f"v{self.layout.first} - v{self.last.last}"

    @property
    def ranked_all(self):
        return len(self.candidates) == self.count

    def shapes(self, limit=None):
        return [c.component for c in self.candidates[:limit]]


def _magic_checked(data, ptr, byte_order):
    """The dump as a 'B' memoryview, after checking it starts with the component magic."""
    raw = memoryview(bytes(data)).cast("B")
    if len(raw) < 4 or int.from_bytes(raw[:4], byte_order) != VMCOMPONENT_MAGIC:
        raise InferError(magic_mismatch_message(None, raw[:4], byte_order, ptr) if len(raw) >= 4
                         else f"a dump of {len(raw)} bytes is too short to hold the magic")
    return raw


def _flag_run(raw, start, byte_order, known_bits):
    """How many consecutive 16-byte flag globals (only `known_bits`, zero padding) start at `start`."""
    n = max(0, (len(raw) - start) // 16)
    if not n:
        return 0
    chunks = np.frombuffer(raw, dtype=np.uint8, count=16 * n, offset=start).reshape(n, 16)
    word = chunks[:, :4].copy().view(BYTE_ORDER_CHAR[byte_order] + "u4").ravel()
    ok = ((word & ~np.uint32(known_bits)) == 0) & (chunks[:, 4:] == 0).all(axis=1)
    return n if ok.all() else int(np.argmin(ok))


def _split(layout):
    """(fields up to the flags and fixed globals after them, the counted arrays that follow)."""
    fields = layout.declared_fields()
    flags = fields.index(layout.flags_field())
    cut = flags + 1
    while cut < len(fields) and fields[cut].count is None:
        cut += 1
    if any(f.count is None for f in fields[cut:]):
        raise InferError(f"{layout.name}: a fixed field after the arrays; infer cannot place it")
    return fields[:cut], fields[cut:]


def _fixed_part_fits(raw, layout, offsets, head, p, byte_order):
    """Header pointers set (not null, not poison), fixed globals after the flags plain, holes zero."""
    inv = invalid_ptr(p)
    flags = layout.flags_field()
    end = offsets.region(head[-1].name).end
    if end > len(raw):
        return False
    covered = np.zeros(end, bool)
    covered[:4] = True
    for field in head:
        region = offsets.region(field.name)
        if field is flags:
            covered[region.offset : region.end] = True  # checked by _flag_run
            continue
        if field.header_name() is not None:
            for k in range(region.size // p):
                if int.from_bytes(raw[region.offset + k * p : region.offset + (k + 1) * p], byte_order) in (0, inv):
                    return False
            covered[region.offset : region.end] = True
        elif field.count is None and not field.init:
            # A plain global the runtime keeps (`task_may_block`): 0 or 1.
            for sub in field.elem_type.subfields:
                at = region.offset + field.sub_offset(sub.name, p)
                width = sub.width(p)
                if int.from_bytes(raw[at : at + width], byte_order) not in (0, 1):
                    return False
                covered[at : at + width] = True
    return not np.frombuffer(raw, dtype=np.uint8, count=end)[~covered].any()


def _written(layout, field):
    """Sub-field -> null rule for everything the runtime's setters write into `field` (vmctx included)."""
    out = {}
    for spec in layout.setters:
        if field.name not in spec.fields:
            continue
        for arg in spec.args:
            if arg.field == field.name:
                for sub in arg.subs:
                    rule = arg.null or field.elem_type.sub(sub).null
                    out[sub] = "allowed" if "allowed" in (rule, out.get(sub)) else rule
        vm = field.elem_type.role_sub("vmctx")
        if vm is not None:
            out.setdefault(vm.name, vm.null)
    return out


def _states(x, layout, field, p, big, address, debug, pointers=None):
    """Per word: FRESH or SET if an element of `field` starting there reads as one, else 0."""
    etype = field.elem_type
    w = etype.size_for(p) // p
    total = len(x)
    out = np.zeros(total + 1, np.uint8)
    n = total - w + 1
    if n <= 0:
        return out
    inv = np.uint64(invalid_ptr(p))
    written = _written(layout, field)
    has_setter = any(field.name in s.fields for s in layout.setters)
    fresh = np.ones(n, bool)
    set_ = np.ones(n, bool)
    covered = [0] * w
    for sub in etype.subfields:
        q, b = divmod(field.sub_offset(sub.name, p), p)
        width = sub.width(p)
        shift = 8 * (p - b - width) if big else 8 * b
        mask = (1 << (8 * width)) - 1
        covered[q] |= mask << shift
        col = x[q : q + n]
        value = col if sub.kind == "ptr" else (col >> np.uint64(shift)) & np.uint64(mask)
        poisoned = debug and sub.name in field.poison
        fresh &= (value == inv) if poisoned else (value == 0)
        if sub.kind == "ptr":
            set_ &= value != inv
        if has_setter and sub.name not in written:
            set_ &= value == 0
        elif sub.kind == "ptr":
            if written.get(sub.name, sub.null) != "allowed":
                set_ &= value != 0
            if address is not None:
                # Only a vmctx sub-field holds the context's own address; nothing else points at it.
                own = value == np.uint64(address)
                set_ &= own if sub.role == "vmctx" else ~own
            if pointers is not None and sub.role != "vmctx":
                set_ &= (value == 0) | pointers(value, sub.role)
    full = (1 << (8 * p)) - 1
    for q, mask in enumerate(covered):
        if mask != full:
            pad_zero = (x[q : q + n] & np.uint64(full & ~mask)) == 0
            fresh &= pad_zero
            set_ &= pad_zero
    out[:n] = np.where(fresh, FRESH, np.where(set_, SET, 0))
    return out


def _runs(valid, w):
    """For each word, how many valid elements of `w` words follow one another from it."""
    length = len(valid)
    rows = -(-length // w)
    grid = np.zeros(rows * w, bool)
    grid[:length] = valid
    grid = grid.reshape(rows, w)
    index = np.arange(rows)[:, None]
    first_bad = np.minimum.accumulate(np.where(grid, rows, index)[::-1], axis=0)[::-1]
    return (first_bad - index).reshape(-1)[:length]


def _widen(ways, length):
    """Ways to int64 unless a sum of `length` of them could overflow it: then exact Python ints."""
    if ways.dtype != object and int(ways.max(initial=0)) * (length + 1) >= 1 << 62:
        return ways.astype(object)
    return ways


def _ways_free(after, runs, w):
    """ways[s] = sum over c <= runs[s] of after[s + c*w]: the array takes any count of elements."""
    length = len(after)
    after = _widen(after, length)
    rows = -(-length // w) + 1
    grid = np.zeros(rows * w, dtype=after.dtype)
    grid[:length] = after
    tails = np.cumsum(grid.reshape(rows, w)[::-1], axis=0)[::-1].reshape(-1)
    ends = np.arange(length) + (runs + 1) * w
    return tails[:length] - tails[ends]


def _ways_fixed(after, runs, w, count, allowed=None):
    """ways[s] = after[s + count*w] where `count` valid elements start at s (and `allowed`)."""
    length = len(after)
    out = np.zeros(length, dtype=after.dtype)
    ends = np.arange(length) + count * w
    ok = (runs >= count) & (ends < length)
    if allowed is not None:
        ok &= allowed
    out[ok] = after[ends[ok]]
    return out


def _prefix_matches(pattern, text):
    """For each position of `text`, how long a prefix of `pattern` matches there (Z-algorithm)."""
    if len(set(pattern)) <= 1:
        letter = pattern[0] if pattern else -1
        return np.minimum(_runs(np.asarray(text) == letter, 1), len(pattern))
    s = list(pattern) + [-1] + list(text)
    z = [0] * len(s)
    left = right = 0
    for i in range(1, len(s)):
        if i < right:
            z[i] = min(right - i, z[i - left])
        while i + z[i] < len(s) and s[z[i]] == s[i + z[i]]:
            z[i] += 1
        if i + z[i] > right:
            left, right = i, i + z[i]
    return np.array(z[len(pattern) + 1 :], dtype=np.int64)


class _Words:
    """The dump's words from `base` on, with each array's states and runs over them.

    Whether an element starting at a word reads as fresh or set, and how many
    follow, does not depend on where the arrays start: every instance count
    tried (each moves the start by whole flag globals) takes a slice of these.
    """

    def __init__(self, base):
        self.base = base
        self.x = self.states = self.runs = None


class _Tail:
    """The arrays after the fixed part, over the dump's words from `start` on, for one instance count."""

    def __init__(self, raw, start, layout, arrays, p, byte_order, address, debug, known, open_end=False,
                 pointers=None, budget=None, words=None):
        self.open_end = open_end
        self.layout = layout
        self.budget = budget
        self.total = (len(raw) - start) // p
        self.arrays = arrays
        self.widths = [f.elem_type.size_for(p) // p for f in arrays]
        if words is None or start < words.base or (start - words.base) % p:
            words = _Words(start)
        if words.x is None:
            total = (len(raw) - words.base) // p
            self.charge(len(arrays) * ((total + 1) * READ_UNITS + READ_CALL_UNITS), "reading the elements")
            words.x = np.frombuffer(raw, dtype=BYTE_ORDER_CHAR[byte_order] + f"u{p}", count=total,
                                    offset=words.base).astype(np.uint64)
            words.states = [_states(words.x, layout, f, p, byte_order == "big", address, debug, pointers)
                            for f in arrays]
            words.runs = [_runs(s != 0, w) for s, w in zip(words.states, self.widths)]
        else:
            self.charge(len(arrays) * READ_CALL_UNITS, "reading the elements")
        skip = (start - words.base) // p
        self.x = words.x[skip:]
        self.states = [s[skip:] for s in words.states]
        self.runs = [r[skip:] for r in words.runs]
        self.known = known
        self.shared, self.follower, self.coupled = self._sharing(layout)
        self._cost_sums = {}

    def charge(self, units, doing):
        """Spend `units` of the call's budget (none when the tail has no budget)."""
        if self.budget is not None:
            self.budget.charge(units, self.layout, doing)

    def _sharing(self, layout):
        """The one count two arrays share, its second array's index, and whether one setter writes both."""
        names = [f.count for f in self.arrays]
        shared = [n for n in dict.fromkeys(names) if names.count(n) > 1]
        if not shared:
            return None, None, False
        if len(shared) > 1 or names.count(shared[0]) > 2 or names[0] != shared[0]:
            raise InferError(f"{layout.name}: infer handles one shared count, on the first array only")
        follower = names.index(shared[0], 1)
        pair = {self.arrays[0].name, self.arrays[follower].name}
        coupled = any(pair <= set(s.fields) for s in layout.setters)
        return shared[0], follower, coupled

    # -- counting ---------------------------------------------------------

    def shared_values(self):
        """The values the shared count can take (the known one, else every one the arrays allow)."""
        if self.shared is None:
            return [None]
        if self.shared in self.known:
            return [self.known[self.shared]]
        top = int(self.runs[0][0])
        if self.coupled:
            top = min(top, int(self._matches().max(initial=0)))
        return list(range(top + 1))

    def _matches(self):
        """For each word, how many leading elements of the first array the follower repeats from there."""
        if not hasattr(self, "_match"):
            w0, wf = self.widths[0], self.widths[self.follower]
            pattern = self.states[0][0 : w0 * int(self.runs[0][0]) : w0].tolist()
            text = self.states[self.follower]
            self.charge(5 * len(text), "matching the shared count's arrays")
            match = np.zeros(len(text), np.int64)
            for r in range(wf):
                match[r::wf] = _prefix_matches(pattern, text[r::wf].tolist())
            self._match = match
        return self._match

    def suffix(self):
        """Tables of the arrays after the shared count's second array, which do not depend on its value."""
        k = len(self.arrays)
        ways = [None] * (k + 1)
        best = [None] * (k + 1)
        if self.open_end:  # the context may end at any word
            ways[k] = np.ones(self.total + 1, np.int64)
            best[k] = np.zeros(self.total + 1)
        else:
            ways[k] = np.zeros(self.total + 1, np.int64)
            ways[k][self.total] = 1
            best[k] = np.full(self.total + 1, np.inf)
            best[k][self.total] = 0.0
        low = 0 if self.follower is None else self.follower + 1
        for j in range(k - 1, low - 1, -1):
            ways[j], best[j] = self._step(j, ways[j + 1], best[j + 1], None)
        return ways, best

    def tables(self, shared_value, suffix):
        """(ways, best): ways[j][s] counts how the arrays from j on fill the words from s to the end,
        best[j][s] is the lowest cost of doing so (j = len(arrays): the end itself)."""
        ways, best = list(suffix[0]), list(suffix[1])
        top = -1 if self.follower is None else self.follower
        for j in range(top, -1, -1):
            ways[j], best[j] = self._step(j, ways[j + 1], best[j + 1], shared_value)
        return ways, best

    def _choice(self, j, shared_value):
        """The one count array j must take (known or shared), or None if any count will do."""
        name = self.arrays[j].count
        if name == self.shared:
            return shared_value
        return self.known.get(name)

    def _step(self, j, ways_after, best_after, shared_value):
        self.charge(STEP_CALL_UNITS + (self.total + 1) * (OBJECT_STEP_UNITS if ways_after.dtype == object
                                                           else STEP_UNITS), "counting the shapes")
        w, runs = self.widths[j], self.runs[j]
        count = self._choice(j, shared_value)
        if count is None:
            return _ways_free(ways_after, runs, w), self._best_free(j, best_after)
        allowed = None
        if j == self.follower and self.coupled:
            allowed = self._matches() >= count
        ways = _ways_fixed(ways_after, runs, w, count, allowed)
        best = np.full(len(best_after), np.inf)
        ok = ways != 0
        starts = np.flatnonzero(ok)
        best[starts] = self._array_cost(j, starts, count) + best_after[starts + count * w]
        return ways, best

    # -- ranking ------------------------------------------------------------
    # An array's cost is what it takes to write its values down: its first
    # element in full (log2 of each word), then each word as the difference
    # from the same word of the element before.

    def _sums(self, w):
        """(first, between): prefix sums of log2(1 + word), and of log2(1 + |word - word w later|)."""
        sums = self._cost_sums.get(w)
        if sums is None:
            x = self.x
            words = np.zeros(len(x) + 1)
            words[1:] = np.log2(1.0 + x.astype(float))
            between = np.zeros(len(x) + 1)
            if len(x) > w:
                a, b = x[:-w], x[w:]
                between[1 : len(x) - w + 1] = np.log2(1.0 + np.where(a > b, a - b, b - a).astype(float))
            sums = self._cost_sums[w] = (np.cumsum(words), np.cumsum(between))
        return sums

    def _array_cost(self, j, s, c):
        """Cost of array j taking c elements from word(s) s (numpy-broadcast over s and c)."""
        w = self.widths[j]
        first, between = self._sums(w)
        s = np.asarray(s)
        c = np.asarray(c)
        top = len(first) - 1
        head = first[np.minimum(s + w, top)] - first[s]
        rest = between[np.minimum(np.maximum(s + (c - 1) * w, 0), top)] - between[s]  # np.clip: 10 µs a call
        return np.where(c >= 1, head + rest, 0.0)

    def _best_free(self, j, best_after):
        """best[s] = min over c <= runs[s] of cost(j, s, c) + best_after[s + c*w], by sparse-table range minima."""
        w, runs = self.widths[j], self.runs[j]
        first, between = self._sums(w)
        length = len(best_after)
        best = best_after.copy()  # c = 0
        starts = np.flatnonzero(runs >= 1)
        if not len(starts):
            return best
        # cost(j, s, c) + best_after[s + c*w] = (first[s+w] - first[s] - between[s]) + H[s + c*w],
        # H[t] = between[t - w] + best_after[t]; the c run over one residue class, a contiguous range of rows.
        h = np.full(length, np.inf)
        h[w:] = between[: length - w] + best_after[w:]
        rows = -(-length // w)
        grid = np.full(rows * w, np.inf)
        grid[:length] = h
        levels = [grid.reshape(rows, w)]
        span = 1
        while 2 * span <= rows:
            prev = levels[-1]
            levels.append(np.minimum(prev[: rows - 2 * span + 1], prev[span : rows - span + 1]))
            span *= 2
        lo = starts // w + 1
        hi = starts // w + runs[starts]
        col = starts % w
        k = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
        low_part = np.empty(len(starts))
        high_part = np.empty(len(starts))
        for level in np.unique(k):
            pick = k == level
            table = levels[level]
            low_part[pick] = table[lo[pick], col[pick]]
            high_part[pick] = table[hi[pick] - (1 << int(level)) + 1, col[pick]]
        head = first[np.minimum(starts + w, length - 1)] - first[starts] - between[starts]
        best[starts] = np.minimum(best[starts], head + np.minimum(low_part, high_part))
        return best

    def children(self, j, s, g, shared_value, best, top=None):
        """Counts array j can take at word s, with the total cost of the best fit through each, cheapest first.

        With `top`, only the `top` cheapest (and any that cost the same, give or
        take rounding) are sorted and returned: a search that wants `top` more
        fits never enters more of them (each child leads to a fit of its cost).
        """
        w, runs = self.widths[j], self.runs[j]
        fixed = self._choice(j, shared_value)
        self.charge(RANK_CALL_UNITS + RANK_UNITS * (int(runs[s]) if fixed is None else 1), "ranking the shapes")
        most = min(int(runs[s]), (self.total - s) // w)
        cs = np.arange(most + 1) if fixed is None else np.array([fixed] if fixed <= most else [], np.int64)
        costs = self._array_cost(j, s, cs)
        f = g + costs + best[j + 1][s + cs * w]
        keep = np.isfinite(f)
        if j == self.follower and self.coupled:
            keep &= self._matches()[s] >= cs
        cs, f, costs = cs[keep], f[keep], costs[keep]
        if top is not None and len(f) > 4 * top:
            # np.sort, not np.partition: partition's introselect is slow on a ramp then a constant.
            near = f <= np.sort(f)[top - 1] + 1e-5
            cs, f, costs = cs[near], f[near], costs[near]
        order = np.lexsort((-cs, f))  # on a tie the earlier array takes the elements
        return cs[order].tolist(), f[order].tolist(), costs[order].tolist()  # the search reads them one at a time


def _key(cost):
    """Costs equal but for float rounding are one cost, so ties fall to the search order."""
    return round(float(cost), 6)


def _ranked(roots, limit):
    """The `limit` cheapest fits over every root, in order.

    Best-first search with an exact cost-to-go (`best`), so fits come out
    cheapest first; a node's children are sorted once and entered one at a
    time (a cursor), so a long run of possible counts costs one sort, not a
    heap entry each.
    """
    heap, seq, out = [], itertools.count(), []
    for root in roots:
        best = root[3]
        if np.isfinite(best[0][0]):
            heapq.heappush(heap, (_key(best[0][0]), next(seq), root, 0, 0, 0.0, (), None))
    pops = 0
    while heap and len(out) < limit:
        f, _, root, j, s, g, counts, cursor = heapq.heappop(heap)
        tail, _, value, best = root
        pops += 1
        if pops == RANK_POPS_CHARGED:
            tail.charge(pops * RANK_POP_UNITS, "ranking the shapes")
            pops = 0
        if cursor is None:
            if j == len(tail.arrays):
                out.append((root, counts, f))
                tail.charge(LIST_UNITS, "listing the shapes")
                continue
            cs, fs, costs = tail.children(j, s, g, value, best, limit - len(out) + 1)
            if len(cs):
                heapq.heappush(heap, (_key(fs[0]), next(seq), root, j, s, g, counts, (cs, fs, costs, 0)))
            continue
        cs, fs, costs, i = cursor
        c = cs[i]
        heapq.heappush(heap, (f, next(seq), root, j + 1, s + c * tail.widths[j], g + costs[i], counts + (c,),
                              None))
        if i + 1 < len(cs):
            heapq.heappush(heap, (_key(fs[i + 1]), next(seq), root, j, s, g, counts, (cs, fs, costs, i + 1)))
    return out


def _check_listing(budget, layout, count, limit):
    """Refuse at once a `limit` whose listing alone would spend the rest of the budget.

    Each listed shape takes at least two heap entries (its own and its parent's
    cursor step) and its listing: a lower bound, so a search refused here would
    have been refused later, after spending the whole budget.
    """
    wanted = min(limit, count)
    if wanted * (LIST_UNITS + 2 * RANK_POP_UNITS) <= budget.left:
        return
    reason = (f"too many candidates: {layout.name}: listing {wanted:,} of its {count:,} shapes in this "
              f"{budget.size:,}-byte dump would take more than the {budget.left:,} work units infer may still spend")
    raise TooManyCandidatesError(f"{reason}; list fewer (limit=) or give the counts you know (counts=) or the "
                                 "release (wasmtime=)", reason=reason, asks=True, limit=limit)


def _instance_counts(run, known):
    if known is not None:
        return [known] if known <= run else []
    return list(range(run, -1, -1)) if run <= MAX_FLAG_RUN_TRIED else [run]


def _check_limit(limit):
    return check_int("limit", limit, 0, kind="an int >= 0", bound="an int >= 0", type_error=InferError,
                     value_error=InferError)


def _prepared(data, ptr, byte_order, address=None, counts=None, debug_assertions=True):
    """(the dump as bytes, the pointer size as an int, the known counts), after the checks every release shares.

    Arguments are checked here, at the boundary: `ArgumentTypeError` /
    `ArgumentValueError` naming the argument (an address beyond the pointer
    size, a count that is not a u32), never an error from numpy.
    """
    ptr = as_ptr_size(ptr)
    if int(ptr) not in EMULATED_PTR_SIZES:
        raise InferError(f"infer works for pointer sizes {EMULATED_PTR_SIZES}, got {int(ptr)}")
    check_byte_order(byte_order)
    check_bool("debug_assertions", debug_assertions)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"data must be bytes, got {type(data).__name__}")
    if memoryview(data).nbytes > INFER_MAX_BYTES:
        raise TooManyCandidatesError(
            f"too many candidates: a dump of {memoryview(data).nbytes:,} bytes is more than infer searches "
            f"({INFER_MAX_BYTES:,} bytes); with its release and counts known, decode it instead")
    if address is not None:
        check_ptr("address", address, ptr)
    known = {} if counts is None else check_counts(counts)
    return _magic_checked(data, ptr, byte_order), int(ptr), known


def infer(data, ptr, byte_order="little", *, wasmtime=None, address=None, counts=None,
          debug_assertions=True, limit=RANKED, open_end=False, pointers=None):
    """Every shape of one release's layout that explains a dump, the most plausible first.

    `counts` fixes the counts already known (Rust names); `address` is where
    the context lived (every set `vmctx` must equal it). With `open_end` the
    memory may go on past the context (live memory, where its end is not
    known): every shape whose context ends inside `data` fits. `pointers(values,
    role)`, when given, says which values a set pointer of that sub-field role
    may hold (live memory: an address mapped with the right permissions). `count` is exact;
    the `limit` cheapest `candidates` are listed, cheapest first. Raises `InferError`
    for a dump no layout could start with, `TooManyCandidatesError` when the
    unknown counts would take too long to try.
    """
    layout = resolve_wasmtime(wasmtime).layout
    raw, p, known = _prepared(data, ptr, byte_order, address, counts, debug_assertions)
    return _infer(raw, layout, p, byte_order, address, known, debug_assertions, _check_limit(limit),
                  open_end, pointers)


def _infer(raw, layout, p, byte_order, address, known, debug, limit, open_end=False, pointers=None, budget=None):
    notes = []
    if budget is None:
        budget = _Budget(WORK_BUDGET, len(raw))
    unknown = sorted(n for n, v in known.items() if n not in layout.count_names and v)
    if int(p) not in layout.valid_ptr_sizes or unknown:
        if unknown:
            notes.append(f"{layout.name} has no {', '.join(unknown)}")
        return Inference(layout, 0, [], notes)
    head, arrays = _split(layout)
    empty = layout.offsets(p)
    if len(raw) < empty.size_of_vmctx():
        notes.append(f"a dump of {len(raw)} bytes is shorter than its smallest context "
                     f"({empty.size_of_vmctx()} bytes at ptr_size={p})")
        return Inference(layout, 0, [], notes)
    flags = layout.flags_field()
    instances_name = flags.count
    run = _flag_run(raw, empty.region(flags.name).offset, byte_order, layout.flag_mask)
    if run > MAX_FLAG_RUN_TRIED and instances_name not in known:
        notes.append(f"{run} flag-looking globals: only the full run was tried as {instances_name}")

    count, roots = 0, []
    words = _Words(layout.offsets(p, **{instances_name: 0}).region(arrays[0].name).offset)
    for instances in _instance_counts(run, known.get(instances_name)):
        offsets = layout.offsets(p, **{instances_name: instances})
        if not _fixed_part_fits(raw, layout, offsets, head, p, byte_order):
            continue
        start = offsets.region(arrays[0].name).offset
        if start > len(raw) or (len(raw) - start) % p and not open_end:
            continue
        tail = _Tail(raw, start, layout, arrays, p, byte_order, address, debug, known, open_end, pointers,
                     budget, words)
        values = tail.shared_values()
        work = len(values) * len(arrays) * (tail.total + 1)
        if work > WORK_LIMIT:
            reason = (f"too many candidates: {layout.name}: {tail.shared} could be any of 0..{values[-1]} in this "
                      f"{len(raw)}-byte dump, too many to try ({work:,} word-steps, limit {WORK_LIMIT:,})")
            raise TooManyCandidatesError(f"{reason}; give it (counts={{{tail.shared!r}: N}})", reason=reason,
                                         count_name=tail.shared, asks=True)
        suffix = tail.suffix()
        for value in values:
            ways, best = tail.tables(value, suffix)
            here = int(ways[0][0])
            if here:
                count += here
                roots.append((tail, instances, value, best))
    _check_listing(budget, layout, count, limit)
    candidates = []
    names = layout.count_names
    for (tail, instances, _, _), tail_counts, cost in _ranked(roots, limit):
        shape = dict.fromkeys(names, 0)
        shape[instances_name] = instances
        for field, c in zip(arrays, tail_counts):
            shape[field.count] = c
        candidates.append(Candidate(layout, tuple(shape.items()), cost))
    return Inference(layout, count, candidates, notes)


def infer_releases(data, ptr, byte_order="little", *, layouts=None, address=None, counts=None,
                   debug_assertions=True, limit=RANKED):
    """`infer` for every release layout (or only `layouts`), leaving out those with no fitting shape.

    Consecutive variants of one layout id (renamed accessors, same bytes) that
    give the same answer are one result covering both ranges.
    """
    raw, p, known = _prepared(data, ptr, byte_order, address, counts, debug_assertions)
    limit = _check_limit(limit)
    budget = _Budget(WORK_BUDGET, len(raw))
    results = []
    for layout in LAYOUTS if layouts is None else layouts:
        result = _infer(raw, layout, p, byte_order, address, dict(known), debug_assertions, limit, budget=budget)
        if not result.count:
            continue
        prev = results[-1] if results else None
        if (prev is not None and prev.layout.id == layout.id and prev.count == result.count
                and [c.counts for c in prev.candidates] == [c.counts for c in result.candidates]):
            prev.last = layout
        else:
            results.append(result)
    return results


def consistent_layouts(data, ptr, byte_order, layouts=None):
    """The release layouts (seed included, or only `layouts`) with at least one shape that fits the dump."""
    found = {r.layout.id for r in infer_releases(data, ptr, byte_order, layouts=layouts, limit=0)}
    return [layout for layout in (LAYOUTS if layouts is None else layouts) if layout.id in found]


def shape_standing(results, data, ptr, byte_order="little", *, layout, counts, address=None, known=None,
                   debug_assertions=True):
    """Where the shape `counts` of `layout` (a sidecar's claim) stands among `results`, the answer of
    `infer_releases` to the same question: its 1-based rank among the listed candidates of its layout; 0
    when it fits but is not listed (past the limit); None when it does not fit the dump (or the `known`
    counts contradict it)."""
    shape = dict.fromkeys(layout.count_names, 0)
    shape.update(check_counts(counts))
    if any(shape.get(name, 0) != value for name, value in (known or {}).items()):
        return None
    result = next((r for r in results if r.layout.id == layout.id), None)
    if result is None:
        return None
    listed = [dict(c.counts) for c in result.candidates]
    if shape in listed:
        return listed.index(shape) + 1
    if result.count == len(result.candidates):
        return None  # every shape that fits is listed
    fits = infer(data, ptr, byte_order, wasmtime=layout, address=address, counts=shape,
                 debug_assertions=debug_assertions, limit=0)
    return 0 if fits.count else None
