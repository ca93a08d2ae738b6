#include "heap_chain.h"

#include <string.h>

#define PREV_INUSE 1u
#define IS_MMAPPED 2u
#define SIZE_BITS 7u
#define MINSIZE 32u
#define ALIGN_MASK 15u

static uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v); /* the host's order: the scanner reads little-endian targets on little-endian hosts */
    return v;
}

size_t vmctx_chunk_chain(const uint8_t *buf, size_t len, uint64_t base, uint64_t end, vmctx_chain *state,
                         uint8_t *bitmap, uint64_t bitmap_base, uint64_t bitmap_bits,
                         uint64_t *free_starts, uint64_t *free_sizes, size_t cap) {
    size_t nfree = 0;
    uint64_t stop = base + len;
    if (state->broken || stop < base)
        return 0;
    while (stop - base >= 16 && state->pos < end && state->pos >= base && state->pos <= stop - 16) {
        uint64_t at = state->pos;
        uint64_t word = load_u64(buf + (at - base) + 8);
        uint64_t size = word & ~(uint64_t)SIZE_BITS;
        if (size < MINSIZE || (size & ALIGN_MASK) || (word & IS_MMAPPED) || size > end - at) {
            state->broken = 1;
            state->bad_word = word;
            break;
        }
        if (state->last && !(word & PREV_INUSE)) {
            if (nfree == cap)
                break;
            free_starts[nfree] = state->last;
            free_sizes[nfree] = state->last_size;
            nfree++;
        }
        if (bitmap && at >= bitmap_base) {
            uint64_t bit = (at - bitmap_base) >> 4;
            if (bit < bitmap_bits)
                bitmap[bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
        state->last = at;
        state->last_size = size;
        state->chunks++;
        state->pos = at + size;
    }
    return nfree;
}
