/* The scanner's one per-byte loop (vmctx_emu.live.scanner): where in a block of
 * a target's memory a 16-byte-aligned word equals the context magic and its
 * zero padding. It only reads the buffer it is given. This header is also the
 * cffi cdef: no preprocessor lines beyond the includes. */
#include <stddef.h>
#include <stdint.h>

/* The offsets (multiples of 16, from `from`) in `buf` (`len` bytes) where the
 * 8 bytes read in the host's order equal `word`: at most `cap` go to `out`;
 * the return value counts them. A full `out` means: call again from the
 * offset after the last one found. */
size_t vmctx_find_aligned_word(const uint8_t *buf, size_t len, size_t from, uint64_t word, uint64_t *out,
                               size_t cap);
