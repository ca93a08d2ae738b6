#include "magic_scan.h"

#include <string.h>

size_t vmctx_find_aligned_word(const uint8_t *buf, size_t len, size_t from, uint64_t word, uint64_t *out,
                               size_t cap) {
    size_t found = 0;
    if (len < 8)
        return 0;
    for (size_t at = (from + 15) & ~(size_t)15; at <= len - 8 && found < cap; at += 16) {
        uint64_t v;
        memcpy(&v, buf + at, sizeof v);
        if (v == word)
            out[found++] = at;
    }
    return found;
}
