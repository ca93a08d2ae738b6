/* posix_memalign is POSIX, not C11: declare it under -std=c11. */
#define _POSIX_C_SOURCE 200112L

#include "vmctx_native.h"

#include <stdlib.h>
#include <string.h>

/* The one bit the echo callee sets, as a lowered callee of v0.40-v41 would see it. */
#define FLAG_NEEDS_POST_RETURN 4

size_t vmctx_host_pointer_size(void) { return sizeof(void *); }

/* memcpy keeps every access well-defined whatever the alignment. */
static uint32_t load_u32(const void *vmctx, uint32_t off) {
    uint32_t v;
    memcpy(&v, (const uint8_t *)vmctx + off, sizeof v);
    return v;
}

static int32_t *flag_word(const void *vmctx, uint32_t off) {
    return (int32_t *)((uint8_t *)vmctx + off);
}

uint32_t vmctx_load_magic(const void *vmctx) { return load_u32(vmctx, 0); }

int32_t vmctx_flags_load(const void *vmctx, uint32_t off) { return *flag_word(vmctx, off); }

int vmctx_flags_test(const void *vmctx, uint32_t off, int32_t bit) {
    return (*flag_word(vmctx, off) & bit) != 0;
}

void vmctx_flags_set(void *vmctx, uint32_t off, int32_t bit) { *flag_word(vmctx, off) |= bit; }

void vmctx_flags_clear(void *vmctx, uint32_t off, int32_t bit) { *flag_word(vmctx, off) &= ~bit; }

uintptr_t vmctx_load_ptr(const void *vmctx, uint32_t off) {
    uintptr_t v;
    memcpy(&v, (const uint8_t *)vmctx + off, sizeof v);
    return v;
}

void vmctx_store_ptr(void *vmctx, uint32_t off, uintptr_t value) {
    memcpy((uint8_t *)vmctx + off, &value, sizeof value);
}

void vmctx_load_anyfunc(const void *vmctx, uint32_t off, vmctx_anyfunc *out) {
    memcpy(out, (const uint8_t *)vmctx + off, sizeof *out);
}

void vmctx_call_lowering(void *vmctx, uint32_t lowering_offset, uint32_t flags_offset,
                         void *opt_memory, void *opt_realloc, uint8_t string_encoding,
                         vmctx_val_raw *args_and_results, size_t nargs_and_results) {
    uintptr_t callee = vmctx_load_ptr(vmctx, lowering_offset);
    uintptr_t data = vmctx_load_ptr(vmctx, lowering_offset + sizeof(void *));
    vmctx_lowering_callee fn = (vmctx_lowering_callee)callee;
    fn(vmctx, (void *)data, (uint8_t *)vmctx + flags_offset, opt_memory, opt_realloc,
       string_encoding, args_and_results, nargs_and_results);
}

void vmctx_echo_callee(void *vmctx, void *data, void *flags, void *opt_memory, void *opt_realloc,
                       uint8_t string_encoding, vmctx_val_raw *args_and_results,
                       size_t nargs_and_results) {
    (void)opt_memory;
    (void)opt_realloc;
    if (nargs_and_results >= 5) {
        args_and_results[0].i64 = (int64_t)(uintptr_t)vmctx;
        args_and_results[1].i64 = (int64_t)(uintptr_t)data;
        args_and_results[2].i32 = *(int32_t *)flags;
        args_and_results[3].i32 = string_encoding;
        args_and_results[4].i64 = (int64_t)nargs_and_results;
    }
    *(int32_t *)flags |= FLAG_NEEDS_POST_RETURN;
}

uintptr_t vmctx_echo_callee_address(void) { return (uintptr_t)&vmctx_echo_callee; }

int vmctx_fused_adapter_call(int32_t *lower, int32_t *lift, int32_t may_leave, int32_t may_enter,
                             int restore_saved, int called_as_export, int has_post_return,
                             int debug_assertions, vmctx_adapter_stage stage, void *env) {
    int rc;
    int32_t saved;
    if (lower == lift) return VMCTX_ADAPTER_SAME_INSTANCE;
    if (!(*lower & may_leave)) return VMCTX_ADAPTER_CANNOT_LEAVE;
    const int enters = may_enter && called_as_export;
    if (enters) {
        if (!(*lift & may_enter)) return VMCTX_ADAPTER_CANNOT_ENTER;
        *lift &= ~may_enter;
    } else if (may_enter && debug_assertions && (*lift & may_enter)) {
        return VMCTX_ADAPTER_ASSERT_FAILED;
    }
    saved = restore_saved ? (*lift & may_leave) : may_leave;
    *lift &= ~may_leave;
    if ((rc = stage(env, 0))) return rc;
    *lift |= saved;
    if ((rc = stage(env, 1))) return rc;
    saved = restore_saved ? (*lower & may_leave) : may_leave;
    *lower &= ~may_leave;
    if ((rc = stage(env, 2))) return rc;
    *lower |= saved;
    if (has_post_return && (rc = stage(env, 3))) return rc;
    if (enters) *lift |= may_enter;
    return VMCTX_ADAPTER_OK;
}

/* VMCTX_INIT_OK or why `f` cannot be applied to a `size`-byte buffer. */
static int check_fill(const vmctx_c_fill *f, uint32_t size) {
    if (f->width != 4 && f->width != sizeof(void *)) return VMCTX_INIT_BAD_WIDTH;
    if (f->width < sizeof(uint64_t) && (f->value >> (8 * f->width)) != 0) return VMCTX_INIT_BAD_VALUE;
    if (f->count == 0) return VMCTX_INIT_OK;
    /* In 64 bits this cannot wrap: (2^32 - 1)^2 + 2^32 - 1 + 8 < 2^64. */
    uint64_t end = (uint64_t)f->offset + (uint64_t)(f->count - 1) * f->stride + f->width;
    return end <= size ? VMCTX_INIT_OK : VMCTX_INIT_OUT_OF_BOUNDS;
}

static void apply_fill(uint8_t *p, const vmctx_c_fill *f) {
    /* check_fill bounded every offset + i * stride by size, so none of this wraps. */
    if (f->width == 4) {
        const uint32_t v = (uint32_t)f->value;
        for (uint32_t i = 0; i < f->count; i++) memcpy(p + f->offset + (size_t)i * f->stride, &v, sizeof v);
    } else {
        const uintptr_t v = (uintptr_t)f->value;
        for (uint32_t i = 0; i < f->count; i++) memcpy(p + f->offset + (size_t)i * f->stride, &v, sizeof v);
    }
}

static void *fail(int *error, int code, size_t *bad_fill, size_t index) {
    if (error) *error = code;
    if (bad_fill) *bad_fill = index;
    return NULL;
}

void *vmctx_c_alloc_init(uint32_t size, uint32_t ptr_size, const vmctx_c_fill *fills, size_t nfills,
                         int *error, size_t *bad_fill) {
    if (ptr_size != sizeof(void *)) return fail(error, VMCTX_INIT_BAD_PTR_SIZE, bad_fill, (size_t)-1);
    if (fills == NULL && nfills != 0) return fail(error, VMCTX_INIT_NULL_FILLS, bad_fill, (size_t)-1);
    for (size_t i = 0; i < nfills; i++) {
        int rc = check_fill(&fills[i], size);
        if (rc != VMCTX_INIT_OK) return fail(error, rc, bad_fill, i);
    }
    uint8_t *p = NULL;
    if (posix_memalign((void **)&p, 16, size ? size : 16) != 0)
        return fail(error, VMCTX_INIT_NO_MEMORY, bad_fill, (size_t)-1);
    memset(p, 0, size);
    for (size_t i = 0; i < nfills; i++) apply_fill(p, &fills[i]);
    if (error) *error = VMCTX_INIT_OK;
    if (bad_fill) *bad_fill = (size_t)-1;
    return p;
}

void vmctx_c_free(void *vmctx) { free(vmctx); }

/* -- the short path of a runtime setter ------------------------------------ */

int vmctx_setter_check(const vmctx_setter *s) {
    uint32_t n = s->nvalues + s->nasserts + s->nown;
    if (s->words == NULL || s->memory == NULL || s->nvalues > 8) return 1;
    for (uint32_t i = 0; i < n; i++) {
        const vmctx_word *w = &s->words[i];
        if (w->width != 4 && w->width != 8) return 1;
        uint64_t last = s->count ? (uint64_t)w->offset + (uint64_t)(s->count - 1) * w->stride + w->width : 0;
        if (last > s->size) return 1;
    }
    return 0;
}

static uint64_t load_word(const uint8_t *p, uint32_t width) {
    if (width == 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void store_word(uint8_t *p, uint32_t width, uint64_t value) {
    if (width == 8) {
        memcpy(p, &value, sizeof value);
    } else {
        uint32_t v = (uint32_t)value;
        memcpy(p, &v, sizeof v);
    }
}

static int fits(const vmctx_word *w, uint64_t value) {
    return (w->width == 8 || value <= UINT32_MAX) && !(w->nonnull && value == 0);
}

int vmctx_setter_run(const vmctx_setter *s, uint64_t index, int debug, const char *packed) {
    uint8_t *memory = s->memory;
    const vmctx_word *asserts = s->words + s->nvalues, *own = asserts + s->nasserts;
    uint64_t values[8];
    if (index >= s->count || s->nvalues > 8) return 1;
    memcpy(values, packed, s->nvalues * sizeof values[0]);
    for (uint32_t i = 0; i < s->nvalues; i++)
        if (!fits(&s->words[i], values[i])) return 1;
    for (uint32_t i = 0; i < s->nown; i++)
        if (!fits(&own[i], s->address)) return 1;
    if (debug)
        for (uint32_t i = 0; i < s->nasserts; i++)
            if (load_word(memory + asserts[i].offset + index * asserts[i].stride, asserts[i].width) != s->invalid)
                return 1;
    for (uint32_t i = 0; i < s->nvalues; i++)
        store_word(memory + s->words[i].offset + index * s->words[i].stride, s->words[i].width, values[i]);
    for (uint32_t i = 0; i < s->nown; i++)
        store_word(memory + own[i].offset + index * own[i].stride, own[i].width, s->address);
    return 0;
}
