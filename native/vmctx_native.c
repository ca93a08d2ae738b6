#include "vmctx_native.h"

size_t vmctx_host_pointer_size(void) { return sizeof(void *); }
