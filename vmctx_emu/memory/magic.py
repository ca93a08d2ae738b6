"""Naming what sits where a `VMComponentContext` magic should be (for errors and the decoder)."""

from ..constants import VMCOMPONENT_MAGIC, VMCONTEXT_MAGIC
from ..layouts.ptr import invalid_ptr

__all__ = ["describe_magic_bytes", "magic_mismatch_message"]


def describe_magic_bytes(raw, byte_order, ptr):
    """What the 4 bytes at offset 0 look like, or None if unknown."""
    raw = bytes(raw)
    value = int.from_bytes(raw, byte_order)
    other = "big" if byte_order == "little" else "little"
    if value == VMCOMPONENT_MAGIC:
        return "the component magic"
    if value == VMCONTEXT_MAGIC:
        return "a core module's VMContext magic ('core')"
    if int.from_bytes(raw, other) == VMCOMPONENT_MAGIC:
        return f"the component magic in {other}-endian byte order"
    if int.from_bytes(raw, other) == VMCONTEXT_MAGIC:
        return f"a core module's VMContext magic ('core') in {other}-endian byte order"
    if raw == bytes(4):
        return "all zeros (never initialized, or cleared)"
    poison = invalid_ptr(ptr).to_bytes(int(ptr), byte_order)
    if raw in (poison[:4], poison[-4:]):
        return "the INVALID_PTR debug poison pattern (0xdeaddeadbeefbeef)"
    return None


def magic_mismatch_message(address, raw, byte_order, ptr):
    raw = bytes(raw)
    hexbytes = " ".join(f"{b:02x}" for b in raw)
    what = describe_magic_bytes(raw, byte_order, ptr)
    found = f"found bytes {hexbytes} ({raw!r}, u32 {int.from_bytes(raw, byte_order):#010x})"
    expected = f"VMCOMPONENT_MAGIC {VMCOMPONENT_MAGIC:#010x} (b'comp')"
    at = "" if address is None else f" at {address:#x}"
    return f"bad magic{at}: expected {expected}, {found}" + (f": {what}" if what else "")
