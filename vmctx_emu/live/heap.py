"""Is a heap address in use or freed? glibc malloc's own bookkeeping, read from a target (never written).

Wasmtime allocates each `ComponentInstance` (its stored offsets, its own
address, then the context) with one `alloc_zeroed`, which Rust's system
allocator serves with glibc's `calloc`. When the store is dropped the block
is freed, but its bytes stay until reused: a scan finds the magic there as
if the context were live. glibc records which blocks are in use, and that
record is what this module reads. What it relies on, from glibc's
malloc/malloc.c and malloc/arena.c, 64-bit (x86-64 and aarch64), glibc 2.26
(tcache) to 2.43; measured on Debian's 2.36 (x86-64, and aarch64 under qemu):

* A chunk is `prev_size`, `size` (8 bytes each), then the user's bytes at
  chunk + 16. The size is a multiple of 16, at least 32; its low bits are
  PREV_INUSE (1), IS_MMAPPED (2) and NON_MAIN_ARENA (4). A request of n bytes
  takes `max(32, (n + 8 + 15) & ~15)`; a chunk taken whole from a bin may be
  16 bytes larger (a remainder under MINSIZE is not split off).
* Chunks of a heap follow each other: chunk + size is the next chunk, up to
  the top chunk, which ends where the heap does. The main arena's heap is
  the brk heap ("[heap]"), its first chunk at its start; another arena's
  heap starts on a 64 MiB boundary with its `heap_info` (0x20 bytes, 0x30
  from 2.35), followed, in an arena's first heap, by its `malloc_state`; its
  first chunk comes after them (0x8b0 to 0x8d0 in, 0x870 in 2.43). The first
  chunk is found by following the chain from each 16-byte position of the
  first page whose size word could be a chunk's, then from each later page
  start that could begin one: the position whose chain runs through is it.
  Under qemu-user the brk heap shares its mapping with the executable's bss
  (it starts on a later page) and ends before zero pages (the guest's break).
* A chunk in a regular bin (unsorted, small, large) or merged with a
  neighbour has its successor's PREV_INUSE bit clear; the bin links (fd, bk)
  overwrite its first 16 bytes (32 for large bins). A chunk merged into the
  top chunk lies past the top's start.
* A chunk in a tcache (2.26+) keeps PREV_INUSE set in its successor; `next`
  at user + 0 (safe-linked from 2.32: stored as `(address >> 12) ^ next`)
  and, from 2.29, a key at user + 8: 2.29-2.33 the thread's
  `tcache_perthread_struct`, 2.34+ a random `tcache_key` shared by every
  entry of every thread (cleared when the chunk is reused). Each thread's
  `tcache_perthread_struct` is a chunk (0x250 bytes: u8 counts[64] then
  entries[64], 2.26-2.29; 0x290: u16 counts, 2.30-2.41; 0x300 or 0x310:
  u16 num_slots[76] then entries[76], 2.42+) allocated first in its arena
  up to 2.41, so the first chunk of a heap; its list heads give the key,
  which then identifies every tcache entry. Without keys (2.26-2.28) the
  lists are followed.
* Fastbins hold chunks of at most 0xa0 bytes (M_MXFAST's limit; removed in
  2.43); no ComponentInstance is that small, so they are not consulted.
* Chunks of 128 KiB and more (the default, dynamic M_MMAP_THRESHOLD) are
  mmapped on their own (IS_MMAPPED; size the mapping's length, 2.43 its
  length - 16); free unmaps them, so one found is in use.

Other allocators (jemalloc, mimalloc, musl's mallocng) keep no such header
before a block: memory outside a glibc heap gives no evidence, never a guess.
The chain is followed in C (`heap_chain.c`) while the scanner streams each
writable mapping, so the cost grows with bytes; per heap it keeps one bit per
16 bytes (where chunks start) and the free chunks' extents.
"""

import bisect
from dataclasses import dataclass

import numpy as np

from .._native import ffi, lib
from ..errors import UnreadableMemoryError

__all__ = ["Heaps", "HeapWalk", "Allocation", "request2size", "PREV_INUSE", "IS_MMAPPED", "NON_MAIN_ARENA"]

SIZE_SZ = 8
MINSIZE = 32
PREV_INUSE, IS_MMAPPED, NON_MAIN_ARENA = 1, 2, 4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA
HEAP_MAX_SIZE = 64 << 20  # a non-main arena's heaps are aligned to it (2 * DEFAULT_MMAP_THRESHOLD_MAX)
FIRST_CHUNK_SEARCH = 4096  # the first chunk of a heap lies within its first page
# tcache_perthread_struct by its chunk size: (bytes per count, bins, whether counts count down).
# 2.26-2.29: u8 counts[64]; 2.30-2.41: u16 counts[64]; 2.42+: u16 num_slots[76] (slots left, so an
# empty bin is not 0); 2.43's lazy allocation pads the request twice (0x310).
TCACHE_STRUCTS = {0x250: (1, 64, False), 0x290: (2, 64, False), 0x300: (2, 76, True), 0x310: (2, 76, True)}
TCACHE_SMALL_BINS = 64  # bin i < 64 holds chunks of 32 + 16 * i bytes; later bins (2.42+) ranges of sizes
TCACHE_HEAD_CHUNKS = 4  # a thread's tcache is among the first chunks of its arena's heap
TCACHE_LIST_MAX = 1 << 16  # tcache_count is a u16 from 2.30 on: a longer list is a cycle or damage
FREE_BATCH = 1 << 14
RETRIES = 16  # re-reads of a live heap whose chain broke while it changed


def request2size(n):
    """The chunk size glibc gives a request of n bytes (64-bit)."""
    return max(MINSIZE, (n + SIZE_SZ + 15) & ~15)


@dataclass(frozen=True)
class Allocation:
    """What glibc's bookkeeping says about the block holding an address.

    `state`: "in use", "free" (in a bin, merged, or in the top chunk),
    "tcache" (freed into a thread's cache), "reused" (inside a live block
    that is not the one asked about: freed, then allocated again), or
    "unknown"; `chunk`/`size`
    the chunk holding it (None when unknown), `heap` the heap's description,
    `why` one line of evidence.
    """

    state: str
    chunk: int | None
    size: int | None
    heap: str | None
    why: str

    @property
    def user(self):
        return None if self.chunk is None else self.chunk + 2 * SIZE_SZ

    def __repr__(self):  # the chunk's address and size in hex
        chunk, size = (None if v is None else f"{v:#x}" for v in (self.chunk, self.size))
        return (f"Allocation(state={self.state!r}, chunk={chunk}, size={size}, heap={self.heap!r}, "
                f"why={self.why!r})")


class HeapWalk:
    """One writable mapping walked as a glibc heap while the scanner streams it, block by block, in order.

    A running process changes its heap while it is read: a chunk seen in one
    block may be split or merged before the next block is read, so the chain
    seems to break. `reread(address, size)`, given for a live target, reads
    again from the last chunk the chain reached, at most RETRIES times per
    heap; a core is still, and a break in it is damage.
    """

    def __init__(self, mapping, reread=None):
        self.mapping = mapping
        self.reread = reread
        self.retries = 0
        self.start, self.end = mapping.start, mapping.end
        self.first = None  # address of the first chunk, once found
        self.state = None
        self.bitmap = None
        self.free_starts, self.free_sizes = [], []
        self.top = None
        self.broken = None  # why this is not (or no longer) a heap
        self.next_address = mapping.start
        self.heap_end = mapping.end  # where the top chunk ends: the mapping's end, or (qemu's brk) a page before

    @property
    def valid(self):
        """The chain ran from the first chunk to the mapping's end: every chunk start is known."""
        return self.broken is None and self.top is not None

    @property
    def kind(self):
        return "arena heap" if self.start % HEAP_MAX_SIZE == 0 and self.first != self.start else "heap"

    def describe(self):
        return f"glibc {self.kind} {self.start:#x}-{self.end:#x}"

    def feed(self, address, data):
        """The mapping's bytes [address, address + len(data)), the blocks in order."""
        if self.broken is not None:
            return
        if self.top is not None:
            if self.heap_end < self.end and data.count(0) != len(data):
                self.broken = f"bytes past the heap's end {self.heap_end:#x} are not zero (at {address:#x}..)"
            return
        if address != self.next_address:
            self.broken = (f"its bytes at {self.next_address:#x}..{address:#x} are not in the source"
                           if address > self.next_address else f"blocks out of order at {address:#x}")
            return
        self.next_address = address + len(data)
        if self.first is None:
            self.first = self._first_chunk(address, data)
            if self.first is None:
                self.broken = "no chunk chain starts in its first page"
                return
            self.state = ffi.new("vmctx_chain *", {"pos": self.first})
            self.bitmap = np.zeros(((self.end - self.start) // 16 + 7) // 8, np.uint8)
        self._walk(address, data)
        while self.broken is not None and self.reread is not None and self.retries < RETRIES:
            self.retries += 1
            start = self.state.last or self.first
            try:
                fresh = self.reread(start, self.next_address - start)
            except UnreadableMemoryError:
                return
            self.broken = None
            # From the last chunk reached, whose predecessor's state was already taken.
            self.state.pos, self.state.last, self.state.broken = start, 0, 0
            self._walk(start, fresh)

    def _walk(self, address, data):
        buf = ffi.from_buffer("uint8_t[]", data)
        starts = np.empty(FREE_BATCH, np.uint64)
        sizes = np.empty(FREE_BATCH, np.uint64)
        bitmap = ffi.from_buffer("uint8_t[]", self.bitmap)
        while True:
            n = lib.vmctx_chunk_chain(buf, len(data), address, self.end, self.state, bitmap, self.start,
                                      len(self.bitmap) * 8, ffi.from_buffer("uint64_t[]", starts), ffi.from_buffer("uint64_t[]", sizes),
                                      FREE_BATCH)
            if n:
                self.free_starts.append(starts[:n].copy())
                self.free_sizes.append(sizes[:n].copy())
            if n < FREE_BATCH:
                break
        if self.state.broken and self.reread is not None and self._grew():
            # A live heap grew after its mapping was listed: this chunk, past the end we know of, is the top.
            self.top = (self.state.pos, self.end - self.state.pos)
        elif self.state.broken and _brk_end(self.state) and data.count(0, self.state.pos - address) == \
                len(data) - (self.state.pos - address):
            # The top chunk ends at the program break and the mapping goes on with zero pages (qemu-user
            # maps the guest's brk area ahead): the heap ends there.
            self.top, self.heap_end = (self.state.last, self.state.last_size), self.state.pos
        elif self.state.broken:
            self.broken = (f"the chunk at {self.state.pos:#x} has an impossible size word {self.state.bad_word:#x} "
                           f"(after {self.state.chunks} chunks)")
        elif self.state.pos == self.end:
            self.top = (self.state.last, self.state.last_size)

    def _grew(self):
        """Whether the chain broke only because its last chunk runs past the mapping's listed end."""
        word = self.state.bad_word
        size = word & ~SIZE_BITS
        return (size >= MINSIZE and size % 16 == 0 and not word & IS_MMAPPED and size > self.end - self.state.pos
                and self.state.pos + 2 * SIZE_SZ <= self.end)

    def _first_chunk(self, address, data):
        """The first chunk: the first 16-byte position of the first page whose chain runs through this block;
        failing that, a later page start that begins a chunk (prev_size 0, PREV_INUSE set), where a brk heap
        begins when it shares its mapping with the executable's bss (so under qemu-user)."""
        block_end = address + len(data)
        buf = ffi.from_buffer("uint8_t[]", data)
        cap = len(data) // MINSIZE + 1
        scratch = np.empty(cap, np.uint64)
        out = ffi.from_buffer("uint64_t[]", scratch)
        words = np.frombuffer(data[: len(data) // 8 * 8], "<u8")
        pages = np.arange(FIRST_CHUNK_SEARCH // 8, len(words) - 1, FIRST_CHUNK_SEARCH // 8)
        sizes = words[pages + 1]
        later = pages[(words[pages] == 0) & (sizes & PREV_INUSE != 0) & (sizes & ~np.uint64(SIZE_BITS) >= MINSIZE)
                      & (sizes % 16 == PREV_INUSE)]
        # In the first page, only positions whose size word could be a chunk's are followed.
        heads = np.arange(0, min(FIRST_CHUNK_SEARCH, len(words) * 8 - 8), 16) // 8
        first = words[heads + 1]
        size = first & ~np.uint64(SIZE_BITS)
        room = np.uint64(self.end - address) - (heads * 8).astype(np.uint64)
        heads = heads[(size >= MINSIZE) & (size % 16 == 0) & (first & IS_MMAPPED == 0) & (size <= room)]
        offsets = (heads * 8).tolist() + (later * 8).tolist()
        for offset in offsets:
            state = ffi.new("vmctx_chain *", {"pos": address + offset})
            lib.vmctx_chunk_chain(buf, len(data), address, self.end, state, ffi.NULL, 0, 0, out, out, cap)
            if state.chunks >= 2 and (not state.broken and (state.pos >= block_end or state.pos == self.end)
                                      or state.broken and _brk_end(state)):
                return address + offset
        return None

    def finish(self):
        """After the last block: a heap whose chain stopped short of its end is not trusted."""
        if self.broken is None and self.first is not None and self.top is None:
            self.broken = f"its chunk chain stops at {self.state.pos:#x}, short of the end {self.end:#x}"
        starts = np.concatenate(self.free_starts) if self.free_starts else np.zeros(0, np.uint64)
        sizes = np.concatenate(self.free_sizes) if self.free_sizes else np.zeros(0, np.uint64)
        self.free_starts, self.free_sizes = starts, sizes
        if not self.valid:
            self.bitmap = None  # no use for it, and it may be large

    def chunk_at(self, address):
        """(start, size) of the chunk holding `address`, or None; the size is the distance to the next chunk
        (the chain is contiguous, so no size word need be read)."""
        if not self.valid or not self.first <= address < self.heap_end:
            return None
        bit = (address - self.start) >> 4
        start = self._set_bit(bit, back=True)
        if start is None:
            return None
        following = self._set_bit(bit + 1, back=False)
        end = self.heap_end if following is None else self.start + (following << 4)
        return self.start + (start << 4), end - self.start - (start << 4)

    def _set_bit(self, bit, back):
        """The last set bit at or before `bit` (back) or the first at or after it, looking in growing windows:
        most queries land a few hundred bytes from their chunk's edges, and the bitmap is never unpacked."""
        byte = bit >> 3
        if byte >= len(self.bitmap):
            return None
        here = int(self.bitmap[byte]) & (((2 << (bit & 7)) - 1) if back else (0xFF << (bit & 7)) & 0xFF)
        if here:
            return byte * 8 + (here.bit_length() - 1 if back else (here & -here).bit_length() - 1)
        window = 64
        while True:
            low, high = (max(0, byte - window), byte) if back else (byte + 1, min(len(self.bitmap), byte + 1 + window))
            if low >= high:
                return None
            nonzero = np.flatnonzero(self.bitmap[low:high])
            if len(nonzero):
                found = low + int(nonzero[-1 if back else 0])
                value = int(self.bitmap[found])
                return found * 8 + (value.bit_length() - 1 if back else (value & -value).bit_length() - 1)
            byte = low if back else high - 1
            window *= 4

    def free_chunk_holding(self, address):
        """(start, size) of the free chunk (in a bin, or the top) holding `address`, or None."""
        if self.top and self.top[0] <= address < self.heap_end:
            return self.top
        i = int(np.searchsorted(self.free_starts, np.uint64(address), side="right")) - 1
        if i >= 0 and address < int(self.free_starts[i]) + int(self.free_sizes[i]):
            return int(self.free_starts[i]), int(self.free_sizes[i])
        return None


def _brk_end(state):
    """Whether a chain broke on a zero size word at a page boundary after its top chunk: the program break."""
    return state.broken and state.bad_word == 0 and state.pos % 4096 == 0 and state.last


class Heaps:
    """glibc's heaps among a target's writable mappings, walked while the scanner reads them; then asked."""

    def __init__(self, src):
        self.src = src
        self.walks = {}
        self._starts = []
        self._tcache = None

    def walker(self, mapping):
        """The walk for a writable mapping; the scanner feeds it every block it reads of the mapping."""
        walk = HeapWalk(mapping, self.src.read if self.src.live else None)
        self.walks[mapping.start] = walk
        return walk

    def finish(self):
        for walk in self.walks.values():
            walk.finish()
        self._starts = sorted(self.walks)

    def _walk_holding(self, address):
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        walk = self.walks[self._starts[i]]
        return walk if address < walk.end else None

    def _word(self, address, near=None):
        """The u64 at `address`: from `near` ((address, bytes) held already) when it is there, else read."""
        if near is not None and near[0] <= address and address + SIZE_SZ <= near[0] + len(near[1]):
            at = address - near[0]
            return int.from_bytes(near[1][at:at + SIZE_SZ], "little")
        try:
            return int.from_bytes(self.src.read(address, SIZE_SZ), "little")
        except UnreadableMemoryError:
            return None

    # ----------------------------------------------------------------- tcache

    def tcached(self):
        """{user address: why} of the tcache entries found by following lists (glibc without keys); the keys
        (`tcache_keys`) learned from each heap's tcache_perthread_struct identify the rest."""
        if self._tcache is None:
            self._tcache = {}
            self.tcache_keys = set()
            for walk in self.walks.values():
                if walk.valid:
                    self._read_tcache(walk)
        return self._tcache

    def _read_tcache(self, walk):
        chunk = walk.first
        for _ in range(TCACHE_HEAD_CHUNKS):
            if chunk is None or chunk >= walk.end:
                return
            word = self._word(chunk + SIZE_SZ)
            if word is None:
                return
            size = word & ~SIZE_BITS
            shape = TCACHE_STRUCTS.get(size)
            if shape and self._tcache_lists(chunk + 2 * SIZE_SZ, size, shape):
                return
            chunk += size

    def _chunk_size(self, user):
        """The size of the chunk whose user address is `user`, when a walked heap has a chunk starting there."""
        walk = self._walk_holding(user)
        found = None if walk is None else walk.chunk_at(user - 2 * SIZE_SZ)
        return found[1] if found and found[0] == user - 2 * SIZE_SZ else None

    def _tcache_lists(self, struct_at, struct_size, shape):
        """Read the tcache_perthread_struct at `struct_at`; False when it is not one.

        Each list head's key (glibc 2.29+: at user + 8) is learned, which
        identifies every entry of every tcache of the process by itself
        (`_keyed`). Only without keys (2.26-2.28) are the lists followed.
        """
        width, bins, _ = shape
        try:
            data = self.src.read(struct_at, bins * (width + SIZE_SZ))
        except UnreadableMemoryError:
            return False
        heads = np.frombuffer(data, "<u8", bins, offset=bins * width).tolist()
        # Every head is null or the user address of a chunk of its bin's size (any heap: a thread caches
        # what it frees, whichever arena it came from).
        sizes = {}
        for index, head in enumerate(heads):
            if head:
                sizes[index] = self._chunk_size(head)
                if sizes[index] is None or index < TCACHE_SMALL_BINS and sizes[index] != 32 + 16 * index:
                    return False
        keys = {self._word(head + SIZE_SZ) for head in heads if head} - {None, 0}
        if keys and (len(keys) == 1 or keys == {struct_at}):
            self.tcache_keys |= keys
            return True
        for index, head in enumerate(heads):
            entry, seen = head, 0
            while entry and seen < TCACHE_LIST_MAX:
                seen += 1
                self._tcache[entry] = (f"in the tcache at {struct_at:#x} (bin {index} of {sizes[index]}-byte "
                                       f"chunks, entry {seen})")
                entry = self._next_entry(entry, sizes[index] if index < TCACHE_SMALL_BINS else None)
        return True

    def _next_entry(self, entry, size):
        """The entry after `entry`: safe-linked (2.32+) or plain, whichever is a chunk of the list's size; else 0."""
        word = self._word(entry)
        if not word:
            return 0
        for candidate in (word ^ (entry >> 12), word):
            if candidate == 0:
                return 0
            if candidate % 16 == 0:
                found = self._chunk_size(candidate)
                if found is not None and (size is None or found == size):
                    return candidate
        return 0

    # ----------------------------------------------------------------- asking

    def allocation(self, address, end=None, near=None):
        """What glibc says of the block holding [address, end): `end` (None: not known) checks its size.

        A block is Wasmtime's own allocation when the chunk holding `address`
        is exactly the size a request ending at `end` takes. `near` is
        (address, bytes) the caller already holds around it, read first.
        """
        walk = self._walk_holding(address)
        if walk is None:
            return Allocation("unknown", None, None, None, f"{address:#x} is in no writable mapping read")
        mmapped = self._mmapped(walk, address, end)
        if mmapped is not None:
            return mmapped
        if not walk.valid:
            return Allocation("unknown", None, None, None,
                              f"not in a glibc malloc heap: the mapping {walk.start:#x}-{walk.end:#x} is no chain of "
                              f"chunks ({walk.broken}); another allocator (jemalloc, mimalloc) keeps no header there")
        heap = walk.describe()
        found = walk.chunk_at(address)
        if found is None:
            where = (f"before the first chunk of the {heap}" if address < walk.heap_end else
                     f"past the end of the {heap} (its top chunk ends at {walk.heap_end:#x})")
            return Allocation("unknown", None, None, heap, f"{address:#x} lies {where}")
        free = walk.free_chunk_holding(address)
        if free is not None:
            start, size = free
            where = "the top chunk (unallocated)" if walk.top and start == walk.top[0] else "a free chunk"
            return Allocation("free", start, size, heap,
                              f"inside {where} of {size} bytes at {start:#x} in the {heap}")
        chunk, size = found
        user = chunk + 2 * SIZE_SZ
        tcached = self.tcached().get(user)
        if tcached is not None:
            return Allocation("tcache", chunk, size, heap, f"chunk {chunk:#x} of {size} bytes is {tcached}")
        keyed = self._keyed(user, near)
        if keyed is not None:
            return Allocation("tcache", chunk, size, heap, f"chunk {chunk:#x} of {size} bytes {keyed}")
        fits = "" if end is None else self._fits(user, size, end)
        if fits:
            return Allocation("reused", chunk, size, heap,
                              f"{address:#x} is inside an allocation of {size} bytes at {user:#x} that {fits}: "
                              "its memory was freed and reused")
        return Allocation("in use", chunk, size, heap, f"chunk {chunk:#x} of {size} bytes is in use in the {heap}")

    @staticmethod
    def _fits(user, size, end):
        """'' when a request from `user` to `end` takes a chunk of `size`, else why not."""
        if end > user - SIZE_SZ + size:
            return f"ends at {user - SIZE_SZ + size:#x}, before {end:#x}"
        need = request2size(end - user)
        if size not in (need, need + 16):
            return f"is {size} bytes, where a block ending at {end:#x} would take {need}"
        return ""

    def _keyed(self, user, near=None):
        """Why the chunk at `user` is tcache-freed by its key alone (a tcache this scan did not reach), else None.

        2.34+ every entry holds the process's one random `tcache_key`,
        learned from the tcaches that were reached; 2.29-2.33 the key is the
        address of its thread's tcache_perthread_struct.
        """
        self.tcached()
        key = self._word(user + SIZE_SZ, near)
        if not key:
            return None
        if key in self.tcache_keys:
            return f"holds the tcache key {key:#x} at its user address + 8 (freed into a thread's tcache)"
        if key % 16 == 0 and self._chunk_size(key) in TCACHE_STRUCTS:
            return f"points at the tcache_perthread_struct {key:#x} from its user address + 8 (freed into a tcache)"
        return None

    def _mmapped(self, walk, address, end):
        """An mmapped chunk (its own mapping; freed ones are unmapped) holding `address`, else None."""
        if walk.valid:
            return None
        m = walk.mapping
        prev_size, word = self._word(m.start), self._word(m.start + SIZE_SZ)
        if word is None or prev_size != 0 or not word & IS_MMAPPED:
            return None
        size = word & ~SIZE_BITS
        if (size % 4096 and (size + 16) % 4096) or not m.start + 2 * SIZE_SZ <= address < m.start + size <= m.end:
            return None  # 2.26-2.42: the mapping's length; 2.43: its length - 16
        if end is not None and end > m.start + size:
            return None
        return Allocation("in use", m.start, size, f"mmapped chunk {m.start:#x}-{m.start + size:#x}",
                          f"an mmapped chunk of {size} bytes at {m.start:#x} (glibc unmaps these when freed)")
