"""Constants of `vmcomponent_offsets.rs` and their neighbours, restated."""

__all__ = [
    "VMCOMPONENT_MAGIC",
    "VMCONTEXT_MAGIC",
    "FLAG_MAY_LEAVE",
    "FLAG_MAY_ENTER",
    "FLAG_NEEDS_POST_RETURN",
    "FLAG_NAMES",
]

# u32::from_le_bytes(*b"comp"): stored in the host's byte order, so the
# bytes read "comp" on little-endian hosts and "pmoc" on big-endian ones.
VMCOMPONENT_MAGIC = int.from_bytes(b"comp", "little")
# The core module VMContext's magic, at the same offset 0.
VMCONTEXT_MAGIC = int.from_bytes(b"core", "little")

FLAG_MAY_LEAVE = 1 << 0
FLAG_MAY_ENTER = 1 << 1
FLAG_NEEDS_POST_RETURN = 1 << 2

FLAG_NAMES = (
    (FLAG_MAY_LEAVE, "MAY_LEAVE"),
    (FLAG_MAY_ENTER, "MAY_ENTER"),
    (FLAG_NEEDS_POST_RETURN, "NEEDS_POST_RETURN"),
)
