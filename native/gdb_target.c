/* A tiny "runtime" for the gdb test: builds a context with the C initializer
 * (layout numbers from argv, in vmctx_c_layout field order), clears one flag
 * and stops in vmctx_ready() where a debugger can look at g_vmctx. */
#include <stdio.h>
#include <stdlib.h>

#include "vmctx_native.h"

void *volatile g_vmctx;

__attribute__((noinline)) void vmctx_ready(void) { __asm__ volatile("" ::: "memory"); }

int main(int argc, char **argv) {
    vmctx_c_layout layout;
    uint32_t *fields = (uint32_t *)&layout;
    size_t n = sizeof layout / sizeof *fields;
    if ((size_t)argc != n + 1) {
        fprintf(stderr, "usage: %s <%zu vmctx_c_layout fields>\n", argv[0], n);
        return 2;
    }
    for (size_t i = 0; i < n; i++) fields[i] = (uint32_t)strtoul(argv[i + 1], NULL, 0);
    g_vmctx = vmctx_c_alloc_init(&layout, 0x1000, 0x2000, 1);
    if (!g_vmctx) return 1;
    if (layout.num_runtime_component_instances) vmctx_flags_clear(g_vmctx, layout.flags, 2);
    vmctx_ready();
    vmctx_c_free(g_vmctx);
    return 0;
}
