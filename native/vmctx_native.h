/* Native stand-ins for compiled code and the runtime, acting on a
 * VMComponentContext through its address and offsets computed in Python.
 * This header is also the cffi cdef: no preprocessor lines beyond the includes. */
#include <stddef.h>
#include <stdint.h>

/* Wasmtime's ValRaw: a 16-byte union passed in args_and_results. */
typedef union {
    int32_t i32;
    int64_t i64;
    uint32_t f32;
    uint64_t f64;
    uint8_t v128[16];
    uintptr_t funcref;
    uintptr_t externref;
} vmctx_val_raw;

/* VMCallerCheckedAnyfunc as the C compiler lays it out on this host. */
typedef struct {
    uintptr_t func_ptr;
    uint32_t type_index;
    uintptr_t vmctx;
} vmctx_anyfunc;

/* VMLoweringCallee: (vmctx, data, flags, opt_memory, opt_realloc,
 * string_encoding, args_and_results, nargs_and_results). `flags` is
 * InstanceFlags, a pointer to the instance's VMGlobalDefinition. */
typedef void (*vmctx_lowering_callee)(void *vmctx, void *data, void *flags, void *opt_memory,
                                      void *opt_realloc, uint8_t string_encoding,
                                      vmctx_val_raw *args_and_results, size_t nargs_and_results);

size_t vmctx_host_pointer_size(void);

/* Outcomes of vmctx_fused_adapter_call. */
enum {
    VMCTX_ADAPTER_OK = 0,
    VMCTX_ADAPTER_CANNOT_LEAVE = 1,
    VMCTX_ADAPTER_CANNOT_ENTER = 2,
    VMCTX_ADAPTER_ASSERT_FAILED = 3,
    VMCTX_ADAPTER_RAISED = 4
};

/* Loads and stores compiled code does at fixed offsets. */
uint32_t vmctx_load_magic(const void *vmctx);
int32_t vmctx_flags_load(const void *vmctx, uint32_t flags_offset);
int vmctx_flags_test(const void *vmctx, uint32_t flags_offset, int32_t bit);
void vmctx_flags_set(void *vmctx, uint32_t flags_offset, int32_t bit);
void vmctx_flags_clear(void *vmctx, uint32_t flags_offset, int32_t bit);
uintptr_t vmctx_load_ptr(const void *vmctx, uint32_t offset);
void vmctx_store_ptr(void *vmctx, uint32_t offset, uintptr_t value);
void vmctx_load_anyfunc(const void *vmctx, uint32_t offset, vmctx_anyfunc *out);

/* A lowered call: load the VMLowering at `lowering_offset` and call its
 * callee with the context, its data and the flags at `flags_offset`. */
void vmctx_call_lowering(void *vmctx, uint32_t lowering_offset, uint32_t flags_offset,
                         void *opt_memory, void *opt_realloc, uint8_t string_encoding,
                         vmctx_val_raw *args_and_results, size_t nargs_and_results);

/* A C lowering callee that reports what it received: args_and_results[0..4]
 * become vmctx, data, the flag word, string_encoding and nargs_and_results;
 * it also sets FLAG_NEEDS_POST_RETURN in the flags it was handed. */
void vmctx_echo_callee(void *vmctx, void *data, void *flags, void *opt_memory, void *opt_realloc,
                       uint8_t string_encoding, vmctx_val_raw *args_and_results,
                       size_t nargs_and_results);
uintptr_t vmctx_echo_callee_address(void);

/* The fused adapter's flag protocol (fact/trampoline.rs) on flag words by
 * address. The callback runs each piece of user code: stage 0 translates
 * parameters, 1 is the callee, 2 translates results, 3 is post-return. It
 * returns 0, or a VMCTX_ADAPTER_* code to propagate as a trap/exception. */
typedef int (*vmctx_adapter_stage)(void *env, int stage);

int vmctx_fused_adapter_call(int32_t *lower_flags, int32_t *lift_flags, int called_as_export,
                             int has_post_return, int debug_assertions,
                             vmctx_adapter_stage stage, void *env);

/* A plain C allocator + initializer of the same layout, for benchmarks and
 * as a second witness of initialize_vmctx. Offsets come from Python. */
typedef struct {
    uint32_t size;
    uint32_t store;
    uint32_t flags;
    uint32_t lowering_anyfuncs;
    uint32_t always_trap_anyfuncs;
    uint32_t lowerings;
    uint32_t memories;
    uint32_t reallocs;
    uint32_t post_returns;
    uint32_t num_runtime_component_instances;
    uint32_t num_lowerings;
    uint32_t num_always_trap;
    uint32_t num_runtime_memories;
    uint32_t num_runtime_reallocs;
    uint32_t num_runtime_post_returns;
} vmctx_c_layout;

void *vmctx_c_alloc_init(const vmctx_c_layout *layout, uintptr_t store_data,
                         uintptr_t store_vtable, int debug_assertions);
void vmctx_c_free(void *vmctx);
