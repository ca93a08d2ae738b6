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
    VMCTX_ADAPTER_RAISED = 4,
    VMCTX_ADAPTER_SAME_INSTANCE = 5
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
 * address, for the release whose bits are given: may_enter is 0 from v42
 * (no MAY_ENTER steps), restore_saved puts back the MAY_LEAVE it saved (v47+).
 * The callback runs each piece of user code: stage 0 translates parameters,
 * 1 is the callee, 2 translates results, 3 is post-return. It returns 0, or a
 * VMCTX_ADAPTER_* code to propagate as a trap/exception. */
typedef int (*vmctx_adapter_stage)(void *env, int stage);

int vmctx_fused_adapter_call(int32_t *lower_flags, int32_t *lift_flags, int32_t may_leave, int32_t may_enter,
                             int restore_saved, int called_as_export, int has_post_return,
                             int debug_assertions, vmctx_adapter_stage stage, void *env);

/* The short path of a runtime setter with more than one value (vmctx_emu.memory.instance: `set`),
 * made in Python from the release's declaration once per context and setter. Each word lies at
 * `offset + index * stride` in the context's memory, `width` (4 or 8) bytes in host byte order. */
typedef struct {
    uint32_t offset;
    uint32_t stride;
    uint32_t width;
    uint32_t nonnull; /* 1: 0 is not taken here (the Rust null rules are Python's) */
} vmctx_word;

typedef struct {
    void *memory;      /* the context's bytes */
    uint32_t size;     /* how many: vmctx_setter_check bounds every word by it */
    uint32_t count;    /* the elements an index may name */
    uint32_t nvalues;  /* the arguments, flattened: words[0 .. nvalues), at most 8 */
    uint32_t nasserts; /* then the words a debug build asserts still hold `invalid` */
    uint32_t nown;     /* then the words that get the context's own address, `address` */
    const vmctx_word *words;
    uint64_t invalid;
    uint64_t address;
} vmctx_setter;

/* 0 when every word of every element the setter may touch lies inside the context (and is 4 or 8
 * bytes), else 1: a plan is checked once, when it is made, so vmctx_setter_run never writes outside. */
int vmctx_setter_check(const vmctx_setter *s);

/* The setter on element `index`, its values as `nvalues` host-order u64s (packed by Python): 0 when
 * the index is below `count`, every value fits its word (and is non-zero where `nonnull`) and, with
 * `debug`, every asserted word still holds `invalid`; then every value is written, and `address` into
 * the own words. Otherwise 1 and nothing is written: Python's checked path then raises as the Rust
 * setter fails. */
int vmctx_setter_run(const vmctx_setter *s, uint64_t index, int debug, const char *values);

/* A plain C allocator + initializer: it applies the stores Python derives
 * from a release's declaration (vmctx_emu.memory.initializer), so it knows no
 * layout. Each fill writes `value` as a `width`-byte host-order word `count`
 * times, `stride` bytes apart, from `offset`. Every fill is checked before
 * anything is allocated or written. */
typedef struct {
    uint32_t offset;
    uint32_t count;
    uint32_t stride;
    uint32_t width;
    uint64_t value;
} vmctx_c_fill;

/* Outcomes of vmctx_c_alloc_init, stored in *error. */
enum {
    VMCTX_INIT_OK = 0,
    VMCTX_INIT_NO_MEMORY = 1,      /* posix_memalign failed */
    VMCTX_INIT_BAD_PTR_SIZE = 2,   /* ptr_size is not sizeof(void *) */
    VMCTX_INIT_NULL_FILLS = 3,     /* fills is NULL but nfills is not 0 */
    VMCTX_INIT_BAD_WIDTH = 4,      /* a fill's width is neither 4 nor sizeof(void *) */
    VMCTX_INIT_OUT_OF_BOUNDS = 5,  /* offset + (count - 1) * stride + width > size */
    VMCTX_INIT_BAD_VALUE = 6       /* a fill's value does not fit its width */
};

/* A 16-byte aligned, zeroed `size`-byte context with every fill applied, or
 * NULL with *error set (and *bad_fill the failing fill's index, else
 * (size_t)-1). error and bad_fill may be NULL. Free with vmctx_c_free. */
void *vmctx_c_alloc_init(uint32_t size, uint32_t ptr_size, const vmctx_c_fill *fills, size_t nfills,
                         int *error, size_t *bad_fill);
void vmctx_c_free(void *vmctx);
