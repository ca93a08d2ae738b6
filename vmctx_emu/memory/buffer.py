"""Aligned, zeroed context memory at a real address (ctypes), and the address book `from_opaque` trusts."""

import ctypes
import weakref

from ..errors import ArgumentValueError

__all__ = ["AlignedBuffer", "LiveContexts", "LIVE"]


class AlignedBuffer:
    """`size` zeroed bytes at an address aligned to `align`, owned by a ctypes array.

    The ctypes array is zeroed on creation like `alloc_zeroed`; `raw` is a
    'B' memoryview of exactly `size` bytes that keeps the array alive, so a
    view outliving `close()` still points at live memory, never freed memory.
    """

    __slots__ = ("address", "raw", "_storage")

    def __init__(self, size, align):
        storage = (ctypes.c_ubyte * (size + align - 1))()
        base = ctypes.addressof(storage)
        pad = -base % align
        self._storage = storage
        self.address = base + pad
        self.raw = memoryview(storage).cast("B")[pad : pad + size]


class LiveContexts:
    """Start address → live instance, for `from_opaque`; a lookup never reads memory."""

    def __init__(self):
        self._by_address = weakref.WeakValueDictionary()

    def add(self, address, instance):
        other = self._by_address.get(address)
        if other is not None:
            raise ArgumentValueError(f"address {address:#x} is already the context of a live instance")
        self._by_address[address] = instance

    def remove(self, address):
        self._by_address.pop(address, None)

    def get(self, address):
        return self._by_address.get(address)

    def instances(self):
        return list(self._by_address.values())

    def containing(self, address):
        """The live instance whose context covers `address` (not at its start), if any."""
        for start, inst in list(self._by_address.items()):
            if start <= address < start + inst.offsets.size_of_vmctx():
                return inst
        return None


LIVE = LiveContexts()
