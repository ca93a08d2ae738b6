#include "vmctx_native.h"

#include <stdlib.h>
#include <string.h>

#define VMCOMPONENT_MAGIC 0x706d6f63u /* u32::from_le_bytes(*b"comp") */
#define FLAG_MAY_LEAVE 1
#define FLAG_MAY_ENTER 2
#define FLAG_NEEDS_POST_RETURN 4
#define INVALID_PTR ((uintptr_t)0xdeaddeadbeefbeefull)
#define ANYFUNC_SIZE (3 * sizeof(void *))
#define VMGLOBAL_SIZE 16

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

int vmctx_fused_adapter_call(int32_t *lower, int32_t *lift, int called_as_export,
                             int has_post_return, int debug_assertions,
                             vmctx_adapter_stage stage, void *env) {
    int rc;
    if (!(*lower & FLAG_MAY_LEAVE)) return VMCTX_ADAPTER_CANNOT_LEAVE;
    if (called_as_export) {
        if (!(*lift & FLAG_MAY_ENTER)) return VMCTX_ADAPTER_CANNOT_ENTER;
        *lift &= ~FLAG_MAY_ENTER;
    } else if (debug_assertions && (*lift & FLAG_MAY_ENTER)) {
        return VMCTX_ADAPTER_ASSERT_FAILED;
    }
    *lift &= ~FLAG_MAY_LEAVE;
    if ((rc = stage(env, 0))) return rc;
    *lift |= FLAG_MAY_LEAVE;
    if ((rc = stage(env, 1))) return rc;
    *lower &= ~FLAG_MAY_LEAVE;
    if ((rc = stage(env, 2))) return rc;
    *lower |= FLAG_MAY_LEAVE;
    if (has_post_return && (rc = stage(env, 3))) return rc;
    if (called_as_export) *lift |= FLAG_MAY_ENTER;
    return VMCTX_ADAPTER_OK;
}

static void poison_strided(uint8_t *base, uint32_t count, size_t stride) {
    const uintptr_t invalid = INVALID_PTR;
    for (uint32_t i = 0; i < count; i++) memcpy(base + i * stride, &invalid, sizeof invalid);
}

void *vmctx_c_alloc_init(const vmctx_c_layout *l, uintptr_t store_data, uintptr_t store_vtable,
                         int debug_assertions) {
    uint8_t *p = NULL;
    if (posix_memalign((void **)&p, 16, l->size ? l->size : 16) != 0) return NULL;
    memset(p, 0, l->size);
    const uint32_t magic = VMCOMPONENT_MAGIC;
    memcpy(p, &magic, sizeof magic);
    memcpy(p + l->store, &store_data, sizeof store_data);
    memcpy(p + l->store + sizeof(void *), &store_vtable, sizeof store_vtable);
    for (uint32_t i = 0; i < l->num_runtime_component_instances; i++)
        *(int32_t *)(p + l->flags + i * VMGLOBAL_SIZE) = FLAG_MAY_ENTER | FLAG_MAY_LEAVE;
    if (debug_assertions) {
        poison_strided(p + l->lowerings, 2 * l->num_lowerings, sizeof(void *));
        poison_strided(p + l->lowering_anyfuncs, l->num_lowerings, ANYFUNC_SIZE);
        poison_strided(p + l->always_trap_anyfuncs, l->num_always_trap, ANYFUNC_SIZE);
        poison_strided(p + l->memories, l->num_runtime_memories, sizeof(void *));
        poison_strided(p + l->reallocs, l->num_runtime_reallocs, sizeof(void *));
        poison_strided(p + l->post_returns, l->num_runtime_post_returns, sizeof(void *));
    }
    return p;
}

void vmctx_c_free(void *vmctx) { free(vmctx); }
