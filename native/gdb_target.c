/* A tiny "runtime" for the gdb test: builds a context with the C initializer
 * from a plan on the command line (vmctx_emu.memory.native.c_initializer_argv),
 * optionally clears MAY_ENTER in one flag word, and stops in vmctx_ready()
 * where a debugger can look at g_vmctx.
 *
 *   gdb_target [--clear-may-enter FLAGS_OFFSET] SIZE PTR_SIZE [OFFSET:COUNT:STRIDE:WIDTH:VALUE ...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmctx_native.h"

void *volatile g_vmctx;

__attribute__((noinline)) void vmctx_ready(void) { __asm__ volatile("" ::: "memory"); }

/* One unsigned number up to `max` ending at `stop`; the C initializer checks the rest. */
static int parse(const char **s, char stop, unsigned long long max, unsigned long long *out) {
    char *end;
    if (**s == '-' || **s == '+' || **s == ' ') return 0;
    errno = 0;
    *out = strtoull(*s, &end, 0);
    if (errno || end == *s || *end != stop || *out > max) return 0;
    *s = stop ? end + 1 : end;
    return 1;
}

static int parse_u32(const char *s, uint32_t *out) {
    unsigned long long v;
    if (!parse(&s, '\0', UINT32_MAX, &v)) return 0;
    *out = (uint32_t)v;
    return 1;
}

static int parse_fill(const char *s, vmctx_c_fill *f) {
    unsigned long long v[5];
    const char stops[5] = {':', ':', ':', ':', '\0'};
    for (int i = 0; i < 5; i++)
        if (!parse(&s, stops[i], i < 4 ? UINT32_MAX : UINT64_MAX, &v[i])) return 0;
    f->offset = (uint32_t)v[0];
    f->count = (uint32_t)v[1];
    f->stride = (uint32_t)v[2];
    f->width = (uint32_t)v[3];
    f->value = v[4];
    return 1;
}

static int usage(const char *argv0, const char *why) {
    fprintf(stderr, "%s: %s\nusage: %s [--clear-may-enter FLAGS_OFFSET] SIZE PTR_SIZE "
                    "[OFFSET:COUNT:STRIDE:WIDTH:VALUE ...]\n", argv0, why, argv0);
    return 2;
}

int main(int argc, char **argv) {
    int arg = 1, clear = 0, error = 0;
    uint32_t flags_offset = 0, size, ptr_size;
    size_t bad = 0;
    if (arg + 1 < argc && strcmp(argv[arg], "--clear-may-enter") == 0) {
        if (!parse_u32(argv[arg + 1], &flags_offset)) return usage(argv[0], "bad FLAGS_OFFSET");
        clear = 1;
        arg += 2;
    }
    if (argc - arg < 2) return usage(argv[0], "SIZE and PTR_SIZE are required");
    if (!parse_u32(argv[arg], &size) || !parse_u32(argv[arg + 1], &ptr_size))
        return usage(argv[0], "bad SIZE or PTR_SIZE");
    arg += 2;
    size_t nfills = (size_t)(argc - arg);
    vmctx_c_fill *fills = calloc(nfills ? nfills : 1, sizeof *fills);
    if (!fills) return 1;
    for (size_t i = 0; i < nfills; i++) {
        if (!parse_fill(argv[arg + i], &fills[i])) {
            free(fills);
            return usage(argv[0], "bad fill");
        }
    }
    g_vmctx = vmctx_c_alloc_init(size, ptr_size, fills, nfills, &error, &bad);
    free(fills);
    if (!g_vmctx) {
        fprintf(stderr, "%s: vmctx_c_alloc_init refused: error %d at fill %zu\n", argv[0], error, bad);
        return 1;
    }
    if (clear) {
        /* The flag word must lie inside the context: FLAG_MAY_ENTER is bit value 2. */
        if ((uint64_t)flags_offset + 4 > size) {
            vmctx_c_free(g_vmctx);
            return usage(argv[0], "FLAGS_OFFSET outside the context");
        }
        vmctx_flags_clear(g_vmctx, flags_offset, 2);
    }
    vmctx_ready();
    vmctx_c_free(g_vmctx);
    return 0;
}
