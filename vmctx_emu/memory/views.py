"""Zero-copy numpy views of the context's regions, with dtypes derived from the element types.

Dtypes are built explicitly (names, formats, offsets, itemsize) with the byte
order spelled out, never from a ctypes buffer format (numpy issue 10528).
"""

import numpy as np

from ..checks import BYTE_ORDER_CHAR

__all__ = [
    "element_dtype",
    "region_view",
    "scalar_format",
    "subfield_view",
]

_KIND_FORMAT = {"u32": "u4", "i32": "i4"}


def scalar_format(kind, ptr, byte_order):
    """The numpy format of one sub-field kind ("ptr", "u32", "i32")."""
    code = f"u{int(ptr)}" if kind == "ptr" else _KIND_FORMAT[kind]
    return BYTE_ORDER_CHAR[byte_order] + code


def element_dtype(etype, ptr, byte_order):
    """A structured dtype with one field per sub-field, at its offset, itemsize = element size."""
    subs = etype.subfields
    return np.dtype(
        {
            "names": [s.name for s in subs],
            "formats": [scalar_format(s.kind, ptr, byte_order) for s in subs],
            "offsets": [etype.offset_of(s.name, ptr) for s in subs],
            "itemsize": etype.size_for(ptr),
        }
    )


def region_view(raw, region, etype, ptr, byte_order):
    """The region as an array over `raw` (a 'B' memoryview): writes go to the memory.

    An element with a single sub-field that fills it is a plain integer array;
    a single sub-field with padding (the flag word in its 16-byte global) is a
    strided integer array; anything else is a structured array.
    """
    if len(etype.subfields) == 1:
        return subfield_view(raw, region, etype, etype.subfields[0].name, ptr, byte_order)
    dtype = element_dtype(etype, ptr, byte_order)
    return np.frombuffer(raw, dtype=dtype, count=region.count, offset=region.offset)


def subfield_view(raw, region, etype, sub, ptr, byte_order):
    """One sub-field of every element of the region, as a strided integer array."""
    dtype = element_dtype(etype, ptr, byte_order)
    return np.frombuffer(raw, dtype=dtype, count=region.count, offset=region.offset)[sub]
