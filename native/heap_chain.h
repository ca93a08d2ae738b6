/* glibc malloc's chunk chain, followed through bytes read from a target
 * (vmctx_emu.live.heap): the one loop of the heap reader that is per chunk,
 * not per byte. It only reads the buffer it is given, never an address
 * found in it. This header is also the cffi cdef: no preprocessor lines
 * beyond the includes. */
#include <stddef.h>
#include <stdint.h>

/* Where a walk through one heap stands between blocks. */
typedef struct {
    uint64_t pos;        /* address of the next chunk header (its prev_size word) */
    uint64_t last;       /* the chunk before pos: its address (0: none yet) and size */
    uint64_t last_size;
    uint64_t chunks;     /* chunks walked so far */
    uint64_t bad_word;   /* the size word that broke the chain, when broken */
    int broken;          /* 1: an impossible size word at pos (not a heap, or damaged) */
} vmctx_chain;

/* Follow the chain through `buf`, the target's bytes [base, base + len), up to
 * the heap's `end`. A chunk's size word (at its address + 8, flag bits 1|2|4
 * masked) must be at least 32, a multiple of 16, not IS_MMAPPED and must end
 * at or before `end`. Each chunk sets bit (address - bitmap_base) / 16 of
 * `bitmap` (bitmap_bits bits; NULL: none). A chunk whose successor's
 * PREV_INUSE bit is clear is free in a bin: its address and size go to
 * free_starts/free_sizes (at most cap; the return value counts them, and the
 * walk stops early with pos unread when they are full). The walk stops where
 * the next header is not in the buffer, at `end`, or at a broken size word. */
size_t vmctx_chunk_chain(const uint8_t *buf, size_t len, uint64_t base, uint64_t end, vmctx_chain *state,
                         uint8_t *bitmap, uint64_t bitmap_base, uint64_t bitmap_bits,
                         uint64_t *free_starts, uint64_t *free_sizes, size_t cap);
