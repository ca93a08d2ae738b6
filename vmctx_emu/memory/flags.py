"""`InstanceFlags`: a handle on one instance's flag word, read and flipped in place.

The bits a handle offers are its release's (`flag_bits` of the declaration):
MAY_LEAVE, MAY_ENTER and NEEDS_POST_RETURN up to v41, MAY_LEAVE alone from v42.
A bit is set from a bool or the int 0 or 1 (what C and numpy views hand
back); anything else, "no" included, is refused rather than read as truthy.
"""

import struct
import sys
from functools import lru_cache

from ..errors import ArgumentTypeError, ArgumentValueError, VMContextError
from ..layouts.releases import ALL_FLAGS
from .views import BYTE_ORDER_CHAR, check_byte_order

__all__ = ["InstanceFlags", "flags_class", "flag_names"]


def flag_names(value, bits=ALL_FLAGS):
    """`MAY_LEAVE|MAY_ENTER` style names of the known `bits`; unknown bits as hex."""
    names = [name for bit, name in bits if value & bit]
    rest = value & ~sum(bit for bit, _ in bits)
    if rest:
        names.append(f"{rest & 0xFFFFFFFF:#x}")
    return "|".join(names) or "0"


def _as_bit(on, index, name):
    """A bit's new value from the int 0 or 1; a string, float or other int is refused, never truthy."""
    if type(on) is int and on in (0, 1):
        return on == 1
    error = ArgumentValueError if isinstance(on, int) else ArgumentTypeError
    raise error(f"instance_flags({index}).{name.lower()} must be a bool (or 0/1), got {type(on).__name__} {on!r}")


def _words(owner):
    """The owner's memory as native i32 words, cached on it while live (close() drops it), or None."""
    raw = owner._live()
    view = None
    if owner.byte_order == sys.byteorder:
        view = raw[: len(raw) - len(raw) % 4].cast("i")
    owner._fast_i32 = view
    return view


def _bit_property(bit, name):
    # The per-access path is kept flat: the owner's cached word view (present only while it
    # is live), one index, one store; other byte orders go through struct.
    def get(self):
        try:
            return bool(self._owner._fast_i32[self._at] & bit)
        except (AttributeError, TypeError):
            raw = self._owner._live()
            if not hasattr(self._owner, "_fast_i32"):
                _words(self._owner)
        return bool(self._word.unpack_from(raw, self._offset)[0] & bit)

    def set_(self, on):
        if on is not True and on is not False:
            on = _as_bit(on, self.index, name)
        try:
            view, at = self._owner._fast_i32, self._at
            view[at] = view[at] | bit if on else view[at] & ~bit
            return
        except (AttributeError, TypeError):
            raw = self._owner._live()
            if not hasattr(self._owner, "_fast_i32"):
                _words(self._owner)
        value = self._word.unpack_from(raw, self._offset)[0]
        self._word.pack_into(raw, self._offset, value | bit if on else value & ~bit)

    return property(get, set_, doc=f"FLAG_{name}")


def _absent(name):
    """A bit another release has: reading or writing it says so (not a bare AttributeError)."""
    def refuse(self, *_):
        raise VMContextError(f"{self._owner.layout.name} has no FLAG_{name}: its flag word holds "
                             f"only {'|'.join(n for _, n in self.BITS)}")

    return property(refuse, refuse, doc=f"FLAG_{name} (not in this release)")


def _read_only(prop, name):
    def refuse(self, _):
        raise VMContextError(f"instance_flags({self.index}).{name}: a dump is read-only")

    return property(prop.fget, refuse, doc=prop.__doc__)


class InstanceFlags:
    """The i32 in the first 4 bytes of an instance's `VMGlobalDefinition`.

    Holds the owning context, not the memory, so a closed context raises
    instead of touching memory. Each release's subclass has one boolean
    property per flag bit that release defines.
    """

    __slots__ = ("_owner", "_offset", "_word", "index", "_at")
    BITS = ALL_FLAGS

    def __init__(self, owner, offset, index, byte_order):
        live = getattr(owner, "_live", None)
        if live is None:
            raise ArgumentTypeError(f"InstanceFlags owner must be a context (use ctx.instance_flags(i)), "
                                    f"got {type(owner).__name__}")
        raw = live()
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= len(raw) - 4:
            raise ArgumentValueError(f"InstanceFlags offset must be an int in [0, {len(raw) - 4}], got {offset!r}")
        check_byte_order(byte_order)
        self._owner = owner
        self._offset = offset
        self._at = offset // 4  # index into the owner's i32 words (flag globals are 16-aligned)
        self._word = struct.Struct(BYTE_ORDER_CHAR[byte_order] + "i")
        self.index = index

    def _get_value(self):
        return self._word.unpack_from(self._owner._live(), self._offset)[0]

    def _set_value(self, word):
        if isinstance(word, bool) or not isinstance(word, int):
            raise ArgumentTypeError(f"flag word must be an int, got {type(word).__name__} {word!r}")
        if not -(2**31) <= word < 2**31:
            raise ArgumentValueError(f"flag word must be an i32, got {word}")
        self._word.pack_into(self._owner._live(), self._offset, word)

    value = property(_get_value, _set_value, doc="The raw i32 flag word.")

    def as_raw(self):
        """Address of the flag global (the context's address plus its offset)."""
        owner = self._owner
        owner._live()
        vmctx = owner._vmctx
        if vmctx is None:
            raise VMContextError(f"instance_flags({self.index}).as_raw(): the context's address is unknown")
        return vmctx + self._offset

    @property
    def offset(self):
        return self._offset

    def __getattr__(self, name):
        if name.upper() in {n for _, n in ALL_FLAGS}:
            raise VMContextError(f"{self._owner.layout.name} has no FLAG_{name.upper()}: its flag word holds "
                                 f"only {'|'.join(n for _, n in self.BITS)}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
        if self._owner.closed:
            return f"<InstanceFlags {self.index}: closed>"
        at = "" if self._owner.vmctx is None else f" at {self.as_raw():#x}"
        return f"<InstanceFlags {self.index}{at}: {flag_names(self.value, self.BITS)}>"


@lru_cache(maxsize=None)
def flags_class(layout, writable=True):
    """The `InstanceFlags` of `layout`: a property per flag bit it defines; writes refused if not `writable`."""
    namespace = {"__slots__": (), "BITS": layout.flag_bits, "__module__": __name__}
    for bit, name in layout.flag_bits:
        prop = _bit_property(bit, name)
        namespace[name.lower()] = prop if writable else _read_only(prop, name.lower())
    for _, name in ALL_FLAGS:
        namespace.setdefault(name.lower(), _absent(name))
    if not writable:
        namespace["value"] = _read_only(InstanceFlags.value, "value")
    return type("InstanceFlags", (InstanceFlags,), namespace)
