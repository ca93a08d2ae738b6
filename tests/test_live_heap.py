"""glibc's heap as the scanner reads it, on heaps built here chunk by chunk (glibc 2.34+ layout, 64-bit).

Real heaps are checked against real Wasmtime elsewhere (test_live_liveness, test_live_scan, the release
and aarch64 suites); here every branch is reached on purpose: where the first chunk is, free chunks, the
top, tcache lists (safe-linked, keyed), mmapped chunks, a brk heap ending before zero pages, damage.
"""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu.live.heap import Heaps, request2size
from vmctx_emu.errors import UnreadableMemoryError
from vmctx_emu.live.source import Mapping, MemorySource

BASE = 0x5555_0000_0000
ARENA = 0x7F00_0000_0000  # on a 64 MiB boundary
KEY = 0x1B2B_3C4D_5E6F_7081  # the process's tcache_key
TCACHE = 0x290  # tcache_perthread_struct's chunk (2.30-2.41)


class Heap:
    """Bytes laid out as glibc lays out a heap: `chunks` are (size, state), state "used", "free" or "tcache"."""

    def __init__(self, chunks, *, start=BASE, first=0, size=None, tail_zeros=0, tcache_struct=True):
        self.start, self.first = start, first
        self.chunks = ([(TCACHE, "used")] if tcache_struct else []) + list(chunks)
        body = first + sum(s for s, _ in self.chunks)
        top = (size or max(body + 0x1000, 0x4000)) - tail_zeros - body
        top -= top % 16
        assert top >= 32
        self.top = top
        self.size = body + top + tail_zeros
        self.data = bytearray(self.size)
        self.starts = []
        at, previous = first, None
        for size, state in self.chunks + [(top, "top")]:
            chunk = start + at
            self.starts.append((chunk, size, state))
            in_use = previous is None or previous[1] in ("used", "tcache")
            struct.pack_into("<QQ", self.data, at, previous[0] if previous and not in_use else 0,
                             size | int(in_use))
            at, previous = at + size, (size, state)
        if tcache_struct:
            self._tcache()

    def _tcache(self):
        """The first chunk is the tcache; each tcache'd chunk is in its bin's list, safe-linked and keyed."""
        struct_user = self.start + self.first + 16
        lists = {}
        for chunk, size, state in self.starts:
            if state == "tcache":
                lists.setdefault(size, []).append(chunk + 16)
        for size, entries in lists.items():
            index = (size - 32) // 16
            off = struct_user - self.start
            struct.pack_into("<H", self.data, off + 2 * index, len(entries))
            struct.pack_into("<Q", self.data, off + 128 + 8 * index, entries[0])
            for entry, following in zip(entries, entries[1:] + [0]):
                struct.pack_into("<QQ", self.data, entry - self.start, (entry >> 12) ^ following, KEY)

    @property
    def mapping(self):
        return Mapping(self.start, self.start + self.size, "rw-p", 0, "[heap]")


class Target(MemorySource):
    description = "a test heap"

    def __init__(self, *regions, live=False):
        super().__init__()
        self.regions = {r.start: r for r in regions}
        self.live = live

    def mappings(self):
        return [r.mapping for r in self.regions.values()]

    def _read(self, address, size):
        for start, region in self.regions.items():
            if start <= address and address + size <= start + region.size:
                return bytes(region.data[address - start:address - start + size])
        raise UnreadableMemoryError("unmapped", address=address, size=size, reason="unmapped")


def walked(target, block=1 << 20):
    heaps = Heaps(target)
    for m in target.mappings():
        walk = heaps.walker(m)
        for at in range(m.start, m.end, block):
            walk.feed(at, target.read(at, min(block, m.end - at)))
    heaps.finish()
    return heaps


STATE_OF = {"used": "in use", "free": "free", "tcache": "tcache", "top": "free"}
# Mostly small chunks; some far larger than the chunk lookup's first window (512 chunk positions).
chunk_sizes = st.one_of(st.integers(2, 80), st.integers(2, 80), st.integers(81, 4096)).map(lambda n: 16 * n)


@st.composite
def heaps(draw):
    chunks = draw(st.lists(st.tuples(chunk_sizes, st.sampled_from(["used", "used", "free", "tcache"])),
                           min_size=1, max_size=40))
    # glibc merges neighbouring free chunks: no two in a row; a tcache holds chunks of at most 0x410 bytes.
    merged = []
    for size, state in chunks:
        state = "used" if state == "tcache" and size > 0x410 else state
        if state == "free" and merged and merged[-1][1] == "free":
            merged[-1] = (merged[-1][0] + size, "free")
        else:
            merged.append((size, state))
    return Heap(merged)


@settings(max_examples=200, deadline=None)
@given(heap=heaps(), block=st.sampled_from([4096, 8192, 1 << 20]))
def test_every_chunk_is_read_back_whatever_the_blocks(heap, block):
    heaps_ = walked(Target(heap), block)
    [walk] = heaps_.walks.values()
    assert walk.valid and walk.first == heap.start
    for chunk, size, state in heap.starts:
        for address in (chunk + 16, chunk + size - 1):
            found = heaps_.allocation(address)
            assert (found.state, found.chunk) == (STATE_OF[state], chunk), (hex(address), state, found.why)
            assert found.size == (heap.top if state == "top" else size), (hex(address), state, found.why)


def test_the_chunk_must_be_the_allocation_of_the_block_asked_about():
    """A live chunk holding the address but ending before the block's end, or of another size, is a reuse."""
    heap = Heap([(0x130, "used"), (0x200, "used")])
    heaps_ = walked(Target(heap))
    chunk, size, _ = heap.starts[1]
    user = chunk + 16
    assert heaps_.allocation(user + 8, user + 0x130 - 8).state == "in use"  # exactly what that request takes
    assert heaps_.allocation(user + 8, user + 0x130 - 8 + 16).state == "reused"  # ends past the chunk
    assert heaps_.allocation(user + 8, user + 0x40).state == "reused"  # a request of that size takes less
    assert request2size(0x130 - 8) == 0x130


@pytest.mark.parametrize("start, first, why", [
    (BASE, 0, "the main arena's brk heap: its first chunk at its start"),
    (ARENA, 0x8D0, "a thread arena's first heap: heap_info and malloc_state (glibc 2.35+) before it"),
    (BASE, 0x3000, "a brk heap sharing its mapping with the bss: it starts on a later page"),
])
def test_where_a_heap_starts(start, first, why):
    heap = Heap([(0x40, "used"), (0x60, "free"), (0x80, "used")], start=start, first=first)
    if first:
        heap.data[8:16] = b"\x07" * 8  # what lies before is no chunk chain
    heaps_ = walked(Target(heap))
    [walk] = heaps_.walks.values()
    assert walk.valid and walk.first == start + first, why


def test_a_brk_heap_may_end_before_zero_pages():
    """qemu-user maps the guest's brk area ahead of glibc's heap: the top chunk ends there, zeros follow."""
    heap = Heap([(0x40, "used"), (0x100, "free"), (0x40, "used")], tail_zeros=0x2000)
    heaps_ = walked(Target(heap))
    [walk] = heaps_.walks.values()
    assert walk.valid and walk.heap_end == heap.start + heap.size - 0x2000
    assert heaps_.allocation(walk.heap_end + 0x10).why.endswith(f"(its top chunk ends at {walk.heap_end:#x})")
    heap.data[-8] = 1  # not zeros after all: no heap
    assert not walked(Target(heap)).walks[heap.start].valid


def test_a_damaged_chain_is_no_evidence_before_the_damage():
    """A chain from a later chunk that runs to the heap's end is the heap's own chain from there on: what lies
    after the damage is still judged, what lies before is unknown."""
    heap = Heap([(0x40, "used")] * 4 + [(0x100, "free")] + [(0x40, "used")] * 4)
    chunk, _, _ = heap.starts[5]
    heap.data[chunk - heap.start + 8:chunk - heap.start + 16] = struct.pack("<Q", 0x12345)  # no size
    heaps_ = walked(Target(heap))
    found = heaps_.allocation(heap.starts[3][0] + 16)
    assert found.state == "unknown" and "lies before the first chunk" in found.why
    assert heaps_.allocation(heap.starts[7][0] + 16).state == "in use"
    # Damage in every chunk: no chain at all, no evidence.
    for chunk, _, _ in heap.starts:
        heap.data[chunk - heap.start + 8:chunk - heap.start + 16] = struct.pack("<Q", 0x12345)
    found = walked(Target(heap)).allocation(heap.starts[3][0] + 16)
    assert found.state == "unknown" and "no chain of chunks" in found.why


def test_tcache_entries_are_found_by_their_key_or_their_lists():
    heap = Heap([(0x130, "tcache"), (0x40, "used"), (0x130, "tcache"), (0x40, "used"), (0x130, "used")])
    heaps_ = walked(Target(heap))
    tcached = [c for c, _, s in heap.starts if s == "tcache"]
    assert heaps_.tcached() == {} and heaps_.tcache_keys == {KEY}  # the key learned from the list's head
    assert all("holds the tcache key" in heaps_.allocation(c + 32).why for c in tcached)
    # glibc 2.26-2.28 keeps no key: then the lists are followed.
    for chunk in tcached:
        struct.pack_into("<Q", heap.data, chunk - heap.start + 24, 0)
    heaps_ = walked(Target(heap))
    assert sorted(heaps_.tcached()) == [c + 16 for c in tcached] and heaps_.tcache_keys == set()
    assert "entry 2" in heaps_.allocation(tcached[1] + 32).why
    # A chunk in a tcache this scan did not reach (its thread's struct elsewhere) still holds the key.
    heap = Heap([(0x130, "tcache"), (0x40, "used"), (0x130, "tcache"), (0x40, "used"), (0x130, "used")])
    last = heap.starts[5][0]
    struct.pack_into("<QQ", heap.data, last - heap.start + 16, (last + 16) >> 12, KEY)
    found = walked(Target(heap)).allocation(last + 32)
    assert found.state == "tcache" and "holds the tcache key" in found.why


def test_an_mmapped_chunk_is_in_use():
    class Mmapped:
        start, size = ARENA + (64 << 20), 0x21000
        data = bytearray(0x21000)
        mapping = Mapping(start, start + size, "rw-p", 0, None)

    struct.pack_into("<QQ", Mmapped.data, 0, 0, Mmapped.size | 2)
    found = walked(Target(Mmapped)).allocation(Mmapped.start + 0x100, Mmapped.start + 0x20000)
    assert found.state == "in use" and "an mmapped chunk of 135168 bytes" in found.why


def test_outside_any_glibc_heap_is_unknown():
    other = Heap([(0x40, "used")])
    other.data[:] = bytes(range(256)) * (len(other.data) // 256)  # jemalloc-like: no chunk headers anywhere
    found = walked(Target(other)).allocation(other.start + 0x100)
    assert found.state == "unknown" and "another allocator (jemalloc, mimalloc)" in found.why


def test_a_live_heap_read_while_it_changes_is_read_again():
    """Between two blocks the process split a chunk: the chain seems to break; a live target is read again."""
    heap = Heap([(0x2000, "used"), (0x40, "used")])
    target = Target(heap, live=True)
    heaps_ = Heaps(target)
    m = heap.mapping
    walk = heaps_.walker(m)
    walk.feed(m.start, target.read(m.start, 0x1000))
    # Before the next block is read, the 0x2000 chunk grows over its 0x40 neighbour: the header the chain
    # expects next is gone.
    chunk, neighbour = (c - heap.start for c, _, _ in heap.starts[1:3])
    struct.pack_into("<Q", heap.data, chunk + 8, 0x2041)
    struct.pack_into("<Q", heap.data, neighbour + 8, 0xDEAD)
    walk.feed(m.start + 0x1000, target.read(m.start + 0x1000, m.size - 0x1000))
    heaps_.finish()
    assert walk.valid and walk.retries == 1
    assert heaps_.allocation(heap.start + neighbour + 0x10).chunk == heap.start + chunk
