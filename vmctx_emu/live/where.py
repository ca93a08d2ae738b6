"""Where an address lands in a scanned target: a PC from a backtrace or a data pointer, answered from the
contexts the scan found.

Four questions, each answered only from what the scan read: which mapping holds the address and how
gdb's `info symbol` would name it; which context's bytes it is inside (and which field); which
contexts hold it as a pointer (and in which field); and, for code, the nearest entry point at or
below it that a context knows (a trampoline's `wasm_call`/`array_call`, a lowering's callee, a func
ref's code), with every context that shares that compiled code. JIT code has no symbols, so the
nearest known entry is said as that, never as the function holding the PC.
"""

import bisect
from collections import namedtuple

from ..layouts.types import CODE_ROLES

__all__ = ["Field", "Entry", "Location", "locate", "Locator"]

# A context's field: the context's address and the field's label (`lowerings[3].callee`).
Field = namedtuple("Field", "context label")
# The nearest known entry point at or below a code address: its value, the distance to the address,
# and every context field holding that value.
Entry = namedtuple("Entry", "value distance held_by")
Location = namedtuple("Location", "address mapping named inside held_by entry")
Location.__doc__ = """Where `address` lands: `mapping` (a `Mapping` or None when nothing maps it), `named` (how
the mapping names it: a symbol, `JIT code`, `anonymous rw-p memory`), `inside` (a `Field` of the context whose
bytes hold it, or None), `held_by` (the `Field`s that hold it as a pointer), `entry` (an `Entry` for an
address in code that a context's code pointer is at or below, in the same mapping; else None)."""


class Locator:
    """The pointers of a scan's contexts, indexed once, to answer any number of addresses.

    `contexts`: `LiveContext`s with their bytes; `memory`: the target's `AddressMap`; `name(value, code)`:
    the scan's naming of an address; `pointers(ctx)`: its (role, start, stride, values) per pointer
    sub-field; `size(ctx)`: its context's size in bytes.
    """

    def __init__(self, contexts, memory, name, pointers, size):
        self.memory, self.name = memory, name
        self.contexts = sorted((c for c in contexts if c.data is not None), key=lambda c: c.address)
        self.starts = [c.address for c in self.contexts]
        self.sizes = [size(c) for c in self.contexts]
        self.held = {}  # value -> [(ctx, offset)]
        code = set()
        for ctx in self.contexts:
            for role, start, stride, values in pointers(ctx):
                for i, value in enumerate(values):
                    if value:
                        self.held.setdefault(value, []).append((ctx, start + i * stride))
                        if role in CODE_ROLES:
                            code.add(value)
        self.code = sorted(code)
        self._labels = {}  # context address -> {offset: label}

    def _label(self, ctx, offset):
        """The label of the record at or before `offset` in `ctx` (decoded once per context asked about)."""
        labels = self._labels.get(ctx.address)
        if labels is None:
            decoded = ctx.decoded if ctx.decoded is not None else ctx.decode()
            records, columns = decoded.records, decoded.columns
            labels = self._labels[ctx.address] = (records["offset"].tolist(), [
                columns[c].label(i) for c, i in zip(records["column"].tolist(), records["index"].tolist())])
        offsets, names = labels
        k = bisect.bisect_right(offsets, offset) - 1
        if k < 0:
            return f"+{offset:#x}"
        return names[k] if offsets[k] == offset else f"{names[k]} + {offset - offsets[k]}"

    def _fields(self, value):
        return [Field(ctx.address, self._label(ctx, offset)) for ctx, offset in self.held.get(value, ())]

    def locate(self, address):
        mapping = self.memory.find(address)
        named = self.name(address, True)
        inside = None
        k = bisect.bisect_right(self.starts, address) - 1
        if k >= 0 and address < self.starts[k] + self.sizes[k]:
            ctx = self.contexts[k]
            inside = Field(ctx.address, self._label(ctx, address - ctx.address))
        entry = None
        if mapping is not None and self.memory.is_code(mapping):
            j = bisect.bisect_right(self.code, address) - 1
            if j >= 0 and self.code[j] >= mapping.start:
                value = self.code[j]
                entry = Entry(value, address - value, self._fields(value))
        return Location(address, mapping, named, inside, self._fields(address), entry)


def locate(addresses, contexts, memory, name, pointers, size):
    """A `Location` per address (see `Locator`)."""
    locator = Locator(contexts, memory, name, pointers, size)
    return [locator.locate(a) for a in addresses]
