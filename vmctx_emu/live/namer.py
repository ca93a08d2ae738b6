"""Where an address found in a target lands, and what it points at, in the words of gdb's `info symbol`.

Symbols come only from a file `images.Images` trusts (the same bytes the
target mapped); otherwise an address is named by its file and offset.
Nothing here follows a pointer into the target beyond reading the few words
of the structure it names (a memory's definition, a func ref).
"""

import bisect
import os

import numpy as np

from ..errors import SymbolFileError
from ..layouts.types import CODE_ROLES
from ..errors import UnreadableMemoryError
from .symbols import ElfSymbols, name_address

__all__ = ["AddressMap", "PointerNamer"]

PTR = 8
ORDER = "little"


def _u64(data, at):
    return int.from_bytes(data[at : at + PTR], ORDER)


class AddressMap:
    """The target's mappings, for asking which one holds an address.

    `guest_code`: the target runs its code under an emulator (qemu-user),
    which maps guest code readable but not executable; then any non-writable
    mapping may hold code.
    """

    def __init__(self, mappings, guest_code=False):
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self.starts = [m.start for m in self.mappings]
        self.guest_code = guest_code
        self._arrays = None

    def is_code(self, m):
        return m.executable or (self.guest_code and m.readable and not m.writable)

    def pointers(self, values, role):
        """Which of `values` a set pointer of `role` may hold: code is executable, the rest (memory
        definitions, func refs, tables, host data: runtime structures) writable."""
        if self._arrays is None:
            self._arrays = (np.array(self.starts, np.uint64), np.array([m.end for m in self.mappings], np.uint64),
                            np.array([self.is_code(m) for m in self.mappings], bool),
                            np.array([m.writable for m in self.mappings], bool))
        starts, ends, code, write = self._arrays
        i = np.searchsorted(starts, values, side="right") - 1
        inside = (i >= 0) & (values < ends[np.maximum(i, 0)])
        kind = code if role in CODE_ROLES else write
        return inside & kind[np.maximum(i, 0)]

    def find(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None


class PointerNamer:
    """Names for pointers found in the target: symbols from trusted files, contexts, memories, func refs."""

    def __init__(self, src, memory, images, contexts, func_ref_type):
        self.src, self.memory, self.images = src, memory, images
        self.contexts, self.func_ref_type = contexts, func_ref_type
        self._symbols = {}  # path -> ElfSymbols or None
        self._names = {}  # (value, role) -> name: contexts of one shape share most of their pointers

    def where(self, value, code=False):
        """`value` named; `code`: it is a code pointer (so under an emulator, guest code mapped r-- is code)."""
        m = self.memory.find(value)
        if m is None:
            return "not mapped"
        if value in self.contexts:
            return f"component context at {value:#x}"
        if m.path and not m.path.startswith("["):
            named = self._symbol(value, m)
            return named or f"{os.path.basename(m.path)} + {value - m.start + m.offset:#x} ({m.perms})"
        if m.executable or (code and self.memory.is_code(m)):
            return "JIT code"
        return f"anonymous {m.perms} memory"

    def _symbol(self, value, mapping):
        """`info symbol` text from the file the target mapped at `mapping`, when a trusted copy is here."""
        image = self.images.image_of(mapping)
        if image.path not in self._symbols:
            path, _ = self.images.trusted_file(image)
            elf = None
            if path is not None:
                try:
                    elf = ElfSymbols.open(path)
                except SymbolFileError:
                    elf = None
            self._symbols[image.path] = elf
        elf = self._symbols[image.path]
        return elf is not None and name_address(value, image.mappings, symbols=elf)

    def name(self, value, role, own):
        """What the pointer `value` in a sub-field of `role` names; None for nothing to say (null, its own context)."""
        if value in (0, own) or role in ("flags", "magic"):
            return None
        key = (value, role)
        if key not in self._names:
            self._names[key] = (self._memory(value) if role == "memory" else self._func_ref(value)
                                if role == "func_ref" else self.where(value, code=role in CODE_ROLES))
        return self._names[key]

    def _read(self, value, size):
        try:
            return self.src.read(value, size)
        except UnreadableMemoryError:
            return None

    def _memory(self, value):
        data = self._read(value, 2 * PTR)
        if data is None:
            return f"VMMemoryDefinition at {value:#x} (unreadable)"
        base, length = _u64(data, 0), _u64(data, PTR)
        return f"VMMemoryDefinition: base {base:#x}, current_length {length}"

    def _func_ref(self, value):
        etype = self.func_ref_type
        if etype is None:
            return self.where(value)
        data = self._read(value, etype.size_for(PTR))
        if data is None:
            return f"VMFuncRef at {value:#x} (unreadable)"
        parts = []
        for sub in etype.subfields:
            at = etype.offset_of(sub.name, PTR)
            if sub.kind == "ptr":
                word = _u64(data, at)
                what = ("null" if not word else self.where(word, code=sub.role in CODE_ROLES)
                        if sub.role in CODE_ROLES + ("vmctx",) else "")
                parts.append(f"{sub.name} {word:#x}" + (f" ({what})" if what else ""))
            else:
                parts.append(f"{sub.name} {int.from_bytes(data[at : at + 4], ORDER)}")
        return "VMFuncRef: " + ", ".join(parts)
