"""Constants of `vmcomponent_offsets.rs` and its neighbours, restated once."""

__all__ = [
    "VMCOMPONENT_MAGIC",
    "VMCONTEXT_MAGIC",
    "FLAG_MAY_LEAVE",
    "FLAG_MAY_ENTER",
    "FLAG_NEEDS_POST_RETURN",
    "INVALID_PTR_64",
]

# u32::from_le_bytes(*b"comp"): stored in the host's byte order, so the
# bytes read "comp" on little-endian hosts and "pmoc" on big-endian ones.
VMCOMPONENT_MAGIC = int.from_bytes(b"comp", "little")
# The core module VMContext's magic, at the same offset 0.
VMCONTEXT_MAGIC = int.from_bytes(b"core", "little")

FLAG_MAY_LEAVE = 1 << 0
FLAG_MAY_ENTER = 1 << 1
FLAG_NEEDS_POST_RETURN = 1 << 2

# `INVALID_PTR = 0xdead_dead_beef_beef_u64 as usize`, the debug poison.
INVALID_PTR_64 = 0xDEAD_DEAD_BEEF_BEEF
