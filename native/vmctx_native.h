/* Native stand-ins for compiled code and the runtime, acting on a
 * VMComponentContext by address and offsets (offsets come from Python). */
#include <stddef.h>
#include <stdint.h>

size_t vmctx_host_pointer_size(void);
