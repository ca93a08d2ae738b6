"""`InstanceFlags`: a handle on one instance's flag word, read and flipped in place."""

import struct

from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NAMES, FLAG_NEEDS_POST_RETURN
from ..errors import VMContextError
from .views import BYTE_ORDER_CHAR

__all__ = ["InstanceFlags", "ReadOnlyInstanceFlags", "flag_names"]


def flag_names(value, bits=FLAG_NAMES):
    """`MAY_LEAVE|MAY_ENTER` style names of the known `bits`; unknown bits as hex."""
    names = [name for bit, name in bits if value & bit]
    rest = value & ~sum(bit for bit, _ in bits)
    if rest:
        names.append(f"{rest & 0xFFFFFFFF:#x}")
    return "|".join(names) or "0"


def _bit_property(bit, doc):
    # The per-access path is kept flat: one attribute read for liveness, one
    # unpack, one pack.
    def get(self):
        raw = self._owner._raw
        if raw is None:
            self._owner._live()
        return bool(self._word.unpack_from(raw, self._offset)[0] & bit)

    def set_(self, on):
        raw = self._owner._raw
        if raw is None:
            self._owner._live()
        value = self._word.unpack_from(raw, self._offset)[0]
        self._word.pack_into(raw, self._offset, value | bit if on else value & ~bit)

    return property(get, set_, doc=doc)


class InstanceFlags:
    """The i32 in the first 4 bytes of an instance's `VMGlobalDefinition`.

    Holds the owning context, not the memory, so a closed context raises
    `ValueError` instead of touching memory.
    """

    __slots__ = ("_owner", "_offset", "_word", "index")

    def __init__(self, owner, offset, index, byte_order):
        self._owner = owner
        self._offset = offset
        self._word = struct.Struct(BYTE_ORDER_CHAR[byte_order] + "i")
        self.index = index

    may_leave = _bit_property(FLAG_MAY_LEAVE, "FLAG_MAY_LEAVE")
    may_enter = _bit_property(FLAG_MAY_ENTER, "FLAG_MAY_ENTER")
    needs_post_return = _bit_property(FLAG_NEEDS_POST_RETURN, "FLAG_NEEDS_POST_RETURN")

    @property
    def value(self):
        """The raw i32 flag word."""
        return self._word.unpack_from(self._owner._live(), self._offset)[0]

    @value.setter
    def value(self, word):
        if not -(2**31) <= word < 2**31:
            raise ValueError(f"flag word must be an i32, got {word}")
        self._word.pack_into(self._owner._live(), self._offset, word)

    def as_raw(self):
        """Address of the flag global (the context's address plus its offset)."""
        return self._owner.vmctx + self._offset

    @property
    def offset(self):
        return self._offset

    def __repr__(self):
        try:
            state = flag_names(self.value, self._owner.layout.flag_bits)
        except ValueError:
            state = "closed"
        return f"<InstanceFlags {self.index} at {self.as_raw():#x}: {state}>"


def _read_only_property(name):
    base = getattr(InstanceFlags, name)

    def refuse(self, _):
        raise VMContextError(f"instance_flags({self.index}).{name}: a dump is read-only")

    return property(base.fget, refuse, doc=base.__doc__)


class ReadOnlyInstanceFlags(InstanceFlags):
    """Flags of a loaded dump: reads as `InstanceFlags`, every write refused."""

    __slots__ = ()

    may_leave = _read_only_property("may_leave")
    may_enter = _read_only_property("may_enter")
    needs_post_return = _read_only_property("needs_post_return")
    value = _read_only_property("value")
