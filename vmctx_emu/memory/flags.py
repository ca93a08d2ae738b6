"""`InstanceFlags`: a handle on one instance's flag word, read and flipped in place.

The bits a handle offers are its release's (`flag_bits` of the declaration):
MAY_LEAVE, MAY_ENTER and NEEDS_POST_RETURN up to v41, MAY_LEAVE alone from v42.
A bit is set from a bool or the int 0 or 1 (what C and numpy views hand
back); anything else, "no" included, is refused rather than read as truthy.
"""

import struct

from ..checks import BYTE_ORDER_CHAR, check_byte_order, check_int
from ..constants import FLAG_MAY_ENTER, FLAG_MAY_LEAVE, FLAG_NEEDS_POST_RETURN
from ..errors import ArgumentTypeError, ArgumentValueError, VMContextError
from ..layouts.releases import ALL_FLAGS

__all__ = ["InstanceFlags", "flag_names"]


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


def _bit(bit, name):
    """The property of one flag bit: the word read (and rewritten) in place; refused where the release lacks it.

    The per-access path is kept flat: the context's i32 view of its memory
    (`words["i"]`: host byte order, only while it is live), one index;
    otherwise the word goes through `value`, which raises for a closed context.
    """
    def get(self):
        if self.mask & bit:
            try:
                return self._words["i"][self._at] & bit != 0
            except (KeyError, TypeError):
                return self.value & bit != 0
        raise self._absent(name)

    def set_(self, on):
        if not self.mask & bit:
            raise self._absent(name)
        if not self.context.writable:
            raise self._read_only(name.lower())
        if on is not True and on is not False:
            on = _as_bit(on, self.index, name)
        try:
            words, at = self._words["i"], self._at
            words[at] = words[at] | bit if on else words[at] & ~bit
        except (KeyError, TypeError):
            word = self.value
            self.value = word | bit if on else word & ~bit

    return property(get, set_, doc=f"FLAG_{name} (an error in a release without it)")


class InstanceFlags:
    """The i32 in the first 4 bytes of an instance's `VMGlobalDefinition`.

    Holds the owning context (`context`), not the memory, so a closed
    context raises instead of touching memory. One boolean property per
    flag bit; `bits` are the release's, and a bit it lacks raises
    `VMContextError` saying so. A dump's flags are read-only.
    """

    __slots__ = ("context", "index", "bits", "mask", "_offset", "_word", "_words", "_at")

    def __init__(self, owner, offset, index, byte_order):
        memory = getattr(owner, "memory", None)  # a closed context raises ClosedError here
        if memory is None or not hasattr(owner, "layout"):
            raise ArgumentTypeError(f"InstanceFlags owner must be a context (use ctx.instance_flags(i)), "
                                    f"got {type(owner).__name__}")
        bound = f"an int in [0, {len(memory) - 4}]"
        check_int("InstanceFlags offset", offset, 0, len(memory) - 3, kind=bound, bound=bound,
                  type_error=ArgumentValueError)
        check_byte_order(byte_order)
        self.context = owner
        self._offset = offset
        self.index = index
        self.bits = owner.layout.flag_bits
        self.mask = owner.layout.flag_mask
        self._word = struct.Struct(BYTE_ORDER_CHAR[byte_order] + "i")
        self._words = owner.words  # the context's host-order views: emptied when it closes
        self._at = offset // 4 if offset % 4 == 0 else None  # in the context's i32 words (flag globals are 16-aligned)

    may_leave = _bit(FLAG_MAY_LEAVE, "MAY_LEAVE")
    may_enter = _bit(FLAG_MAY_ENTER, "MAY_ENTER")
    needs_post_return = _bit(FLAG_NEEDS_POST_RETURN, "NEEDS_POST_RETURN")

    @property
    def offset(self):
        """The flag global's offset in the context."""
        return self._offset

    def _absent(self, name):
        return VMContextError(f"{self.context.layout.name} has no FLAG_{name}: its flag word holds "
                              f"only {'|'.join(n for _, n in self.bits)}")

    def _read_only(self, what):
        return VMContextError(f"instance_flags({self.index}).{what}: a dump is read-only")

    def _get_value(self):
        return self._word.unpack_from(self.context.memory, self._offset)[0]

    def _set_value(self, word):
        if not self.context.writable:
            raise self._read_only("value")
        check_int("flag word", word, -(2**31), 2**31, bound="an i32")
        self._word.pack_into(self.context.memory, self._offset, word)

    value = property(_get_value, _set_value, doc="The raw i32 flag word.")

    def as_raw(self):
        """Address of the flag global (the context's address plus its offset)."""
        vmctx = self.context.vmctx  # a closed context raises ClosedError here
        if vmctx is None:
            raise VMContextError(f"instance_flags({self.index}).as_raw(): the context's address is unknown")
        return vmctx + self._offset

    def __repr__(self):
        if self.context.closed:
            return f"<InstanceFlags {self.index}: closed>"
        at = "" if self.context.vmctx is None else f" at {self.as_raw():#x}"
        return f"<InstanceFlags {self.index}{at}: {flag_names(self.value, self.bits)}>"
