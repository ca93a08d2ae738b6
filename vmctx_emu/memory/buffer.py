"""Aligned, zeroed context memory at a real address (ctypes), and the address book `from_opaque` trusts."""

import ctypes
import weakref
from bisect import bisect_left, bisect_right, insort
from collections import Counter

from ..errors import ArgumentValueError

__all__ = ["AlignedBuffer", "LiveContexts", "LIVE"]


class AlignedBuffer:
    """`size` zeroed bytes at an address aligned to `align`, owned by a ctypes array.

    The ctypes array is zeroed on creation like `alloc_zeroed`; `raw` is a
    'B' memoryview of exactly `size` bytes that keeps the array alive, so a
    view outliving `close()` still points at live memory, never freed memory.
    """

    __slots__ = ("address", "raw", "_storage")

    def __init__(self, size, align):
        storage = (ctypes.c_ubyte * (size + align - 1))()
        base = ctypes.addressof(storage)
        pad = -base % align
        self._storage = storage
        self.address = base + pad
        self.raw = memoryview(storage).cast("B")[pad : pad + size]


class LiveContexts:
    """Start address → live instance, for `from_opaque` and the synthetic-address search; never reads memory.

    The starts are kept sorted beside each context's size, so a lookup, an
    interior-address query and a free-range search cost O(log N) plus the few
    neighbours they look at, not a sort of every live context (8,000 instances
    once took 27 s). An instance collected without `close()` leaves through its
    weak reference's callback, which only queues it: the garbage collector may
    run in the middle of a search, so the sorted list changes only between calls.
    """

    def __init__(self):
        self._starts = []  # sorted
        self._entries = {}  # start -> (weak reference, size)
        self._sizes = Counter()  # size -> how many live contexts have it
        self._widest = 0  # the largest live size: nothing starting below `address - _widest` covers `address`
        self._covered = {}  # (base, align) -> an address below which every aligned address in [base, ...) is taken
        self.probes = 0  # contexts looked at by `free_range`, to test its cost without timing it
        self._collected = []  # (start, weak reference) of instances collected since the last call

    def _flush(self):
        while self._collected:
            self._drop(*self._collected.pop())

    def add(self, address, instance, size):
        self._flush()
        entry = self._entries.get(address)
        if entry is not None:
            if entry[0]() is not None:
                raise ArgumentValueError(f"address {address:#x} is already the context of a live instance")
            self._drop(address, entry[0])
        ref = weakref.ref(instance, lambda r, start=address, queue=self._collected: queue.append((start, r)))
        self._entries[address] = (ref, size)
        insort(self._starts, address)
        self._sizes[size] += 1
        self._widest = max(self._widest, size)

    def remove(self, address):
        self._flush()
        entry = self._entries.get(address)
        if entry is not None:
            self._drop(address, entry[0])

    def _drop(self, address, ref):
        entry = self._entries.get(address)
        if entry is None or entry[0] is not ref:
            return  # already removed (and perhaps the address reused)
        del self._entries[address]
        del self._starts[bisect_left(self._starts, address)]
        size = entry[1]
        self._sizes[size] -= 1
        if not self._sizes[size]:
            del self._sizes[size]
            if size == self._widest:
                self._widest = max(self._sizes, default=0)
        for key, covered in self._covered.items():
            self._covered[key] = min(covered, address)

    def get(self, address):
        entry = self._entries.get(address)
        return None if entry is None else entry[0]()

    def instances(self):
        self._flush()
        return [inst for inst in (ref() for ref, _ in self._entries.values()) if inst is not None]

    def _near(self, address):
        """Index of the first start that can cover `address` or lie above it."""
        return bisect_right(self._starts, address - self._widest)

    def containing(self, address):
        """The live instance whose context covers `address` (not at its start), if any."""
        self._flush()
        starts, i = self._starts, self._near(address)
        while i < len(starts) and starts[i] <= address:
            ref, size = self._entries[starts[i]]
            if address < starts[i] + size:
                return ref()
            i += 1
        return None

    def free_range(self, size, base, limit, align):
        """The lowest `align`-aligned address >= `base` with `size` free bytes below `limit` (first fit).

        The search starts where the last one found everything below taken, so
        allocating without freeing looks at O(1) neighbours each time.
        """
        self._flush()
        key = (base, align)
        start = max(base, self._covered.get(key, base))
        candidate = -(-start // align) * align
        first_gap = None
        starts, i = self._starts, self._near(candidate)
        while i < len(starts) and candidate + size <= limit:
            self.probes += 1
            s = starts[i]
            if candidate + size <= s:
                break
            end = s + self._entries[s][1]
            if end > candidate:
                if first_gap is None and candidate < s:
                    first_gap = candidate  # free, but too small for this one
                candidate = -(-end // align) * align
            i += 1
        if candidate + size > limit:
            raise ArgumentValueError(f"no synthetic address below {limit:#x} has room for {size} bytes")
        self._covered[key] = candidate if first_gap is None else first_gap
        return candidate


LIVE = LiveContexts()
