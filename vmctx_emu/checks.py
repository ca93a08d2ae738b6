"""The argument checks every public boundary shares: each says what it checked, its value and the bound.

Each check returns the value it accepted, or raises the package's error
naming the argument. Nothing here imports numpy or another layer.
"""

from .errors import ArgumentValueError

__all__ = ["BYTE_ORDER_CHAR", "check_byte_order"]

BYTE_ORDER_CHAR = {"little": "<", "big": ">"}


def check_byte_order(byte_order):
    if byte_order not in BYTE_ORDER_CHAR:
        raise ArgumentValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
    return byte_order
