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
from ..layouts.core_offsets import core_offsets_layout, counts_from_copy
from ..layouts.types import CODE_ROLES
from ..errors import UnreadableMemoryError
from .symbols import ElfSymbols, address_parts, parts_text

__all__ = ["AddressMap", "PointerNamer", "pointee", "CORE_MAGIC", "NOT_IN_CORE"]

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
            # A mapping may end at 2**64 itself, one past what a u64 holds: its last byte is then left out.
            ends = [min(m.end, (1 << 64) - 1) for m in self.mappings]
            self._arrays = (np.array(self.starts, np.uint64), np.array(ends, np.uint64),
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


CORE_MAGIC = int.from_bytes(b"core", ORDER)  # a core instance's VMContext starts with it
# How a pointer into a file a core's NT_FILE maps, but no segment holds, is named: gdb's gcore leaves read-only
# file pages (a library's code) out, so the address is mapped though the core has neither its bytes nor its perms.
NOT_IN_CORE = "mapped per NT_FILE; the core holds no segment for it"


def pointee(text, kind, **fields):
    """What a pointer points at: `text` (gdb's words, full names) and the same as fields, never disagreeing."""
    return {"kind": kind, "text": text, **fields}


# How a core VMContext's counts read: `num_imported_functions` 2 -> "2 imported functions".
_NOUNS = {"functions": "function", "tables": "table", "memories": "memory", "globals": "global", "funcs": "func"}


def _counts_text(counts):
    """The non-zero counts in words, in the release's order ("no imports or definitions" when all are 0)."""
    words = []
    for name, n in counts.items():
        if n:
            *adjective, noun = name.removeprefix("num_").split("_")
            words.append(" ".join([str(n), *adjective, noun if n != 1 else _NOUNS.get(noun, noun)]))
    return ", ".join(words) or "no imports or definitions"


class PointerNamer:
    """Names for pointers found in the target: symbols from trusted files, contexts, memories, func refs.

    `describe` gives a pointee (`pointee`: kind, text and fields, for JSON); `name` and `where` its text.
    """

    def __init__(self, src, memory, images, contexts, func_ref_type, heaps=None, release=None):
        self.src, self.memory, self.images = src, memory, images
        # the release's stored `VMOffsets` before a core VMContext (None: it keeps none, or not known)
        self.core_offsets = None if release is None else core_offsets_layout(release)
        self.contexts, self.func_ref_type = contexts, func_ref_type
        self.heaps = heaps  # glibc's bookkeeping (`heap.Heaps`), walked by the scan: names host data's block
        self._symbols = {}  # path -> ElfSymbols or None
        self._found = {}  # (value, role) -> pointee: contexts of one shape share most of their pointers

    def where(self, value, code=False):
        """`value` named; `code`: it is a code pointer (so under an emulator, guest code mapped r-- is code)."""
        return self.place(value, code)["text"]

    def place(self, value, code=False, vmctx=False):
        """The pointee of `value` from where it lands (`vmctx`: a core VMContext is expected there)."""
        m = self.memory.find(value)
        if m is None:
            found = self.src.file_at(value)
            if found is None:
                return pointee("not mapped", "unmapped")
            path, offset = found
            image = self.images.images.get(path)  # the file's mappings the source holds: trust and load bias
            parts = self._image_symbol(value, image) if image is not None else None
            if parts:  # a trusted copy of the file names it, as for an address in a segment
                return pointee(f"{parts_text(parts)} ({NOT_IN_CORE})", "symbol" if parts["symbol"] else "file",
                               file=parts["file"], vaddr=f"{parts['vaddr']:#x}", section=parts["section"],
                               symbol=parts["symbol"], offset=parts["offset"])
            return pointee(f"{os.path.basename(path)} + {offset:#x} ({NOT_IN_CORE})", "file",
                           file=os.path.basename(path), file_offset=f"{offset:#x}", perms=None)
        if value in self.contexts:
            return pointee(f"component context at {value:#x}", "component_context", address=f"{value:#x}")
        if m.path and not m.path.startswith("["):
            parts = self._symbol(value, m)
            if parts:
                return pointee(parts_text(parts), "symbol" if parts["symbol"] else "file", file=parts["file"],
                               vaddr=f"{parts['vaddr']:#x}", section=parts["section"], symbol=parts["symbol"],
                               offset=parts["offset"])
            offset = value - m.start + m.offset
            return pointee(f"{os.path.basename(m.path)} + {offset:#x} ({m.perms})", "file",
                           file=os.path.basename(m.path), file_offset=f"{offset:#x}", perms=m.perms)
        if m.executable or (code and self.memory.is_code(m)):
            return pointee("JIT code", "jit_code", mapping=f"{m.start:#x}-{m.end:#x}")
        if vmctx and self._magic(value) == CORE_MAGIC:
            counts = self._core_counts(value)
            if counts is None:
                return pointee(f"core VMContext at {value:#x}", "core_vmcontext", address=f"{value:#x}")
            return pointee(f"core VMContext at {value:#x} ({_counts_text(counts)})", "core_vmcontext",
                           address=f"{value:#x}", counts=counts)
        return pointee(f"anonymous {m.perms} memory", "anonymous", perms=m.perms)

    def _symbol(self, value, mapping):
        """`address_parts` from the file the target mapped at `mapping`, when a trusted copy is here."""
        return self._image_symbol(value, self.images.image_of(mapping))

    def _image_symbol(self, value, image):
        """`address_parts` of `value` in `image`'s file, when a trusted copy is here."""
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
        return None if elf is None else address_parts(value, image.mappings, symbols=elf)

    def describe(self, value, role, own):
        """The pointee of the pointer `value` in a sub-field of `role`; None for nothing to say (null, its own
        context, not a pointer)."""
        if value in (0, own) or role in ("flags", "magic"):
            return None
        key = (value, role)
        if key not in self._found:
            self._found[key] = (self._memory(value) if role == "memory" else self._func_ref(value)
                                if role == "func_ref" else self._host_data(value) if role == "data"
                                else self.place(value, code=role in CODE_ROLES, vmctx=role in ("vmctx", "core_vmctx")))
        return self._found[key]

    def name(self, value, role, own):
        """The text of `describe`."""
        found = self.describe(value, role, own)
        return None if found is None else found["text"]

    def _host_data(self, value):
        """A lowering's host data: where it lands, and the glibc block holding it when the heap walk knows it
        (a block that is not in use is said so: the data outlived its allocation)."""
        found = self.place(value)
        if found["kind"] != "anonymous" or self.heaps is None:
            return found
        block = self.heaps.allocation(value)
        if block.state == "unknown" or block.chunk is None:
            return pointee(f"host data in {found['text']}", "host_data", perms=found["perms"])
        offset = value - block.user
        at = f" + {offset}" if offset else ""
        return pointee(f"host data: {block.state} glibc block {block.user:#x}{at} (chunk of {block.size} bytes)",
                       "host_data",
                       perms=found["perms"], block=f"{block.user:#x}", block_size=block.size, offset=offset,
                       block_state=block.state)

    def _read(self, value, size):
        try:
            return self.src.read(value, size)
        except UnreadableMemoryError:
            return None

    def _core_counts(self, value):
        """The counts of the `VMOffsets` copy the release stores before the core VMContext at `value`, or None:
        no copy in this release (or none measured for this pointer size), unreadable, or not reproduced."""
        layout = self.core_offsets
        distance = None if layout is None else layout.distance_for(PTR)
        if distance is None or value < distance:
            return None
        data = self._read(value - distance, 4 * layout.words())
        if data is None:
            return None
        words = [int.from_bytes(data[i : i + 4], ORDER) for i in range(0, len(data), 4)]
        return counts_from_copy(layout, words, PTR)

    def _magic(self, value):
        data = self._read(value, 4)
        return None if data is None else int.from_bytes(data, ORDER)

    def _memory(self, value):
        data = self._read(value, 2 * PTR)
        if data is None:
            return pointee(f"VMMemoryDefinition at {value:#x} (unreadable)", "VMMemoryDefinition",
                           address=f"{value:#x}", readable=False)
        base, length = _u64(data, 0), _u64(data, PTR)
        return pointee(f"VMMemoryDefinition: base {base:#x}, current_length {length}", "VMMemoryDefinition",
                       address=f"{value:#x}", readable=True, base=f"{base:#x}", current_length=length)

    def _func_ref(self, value):
        etype = self.func_ref_type
        if etype is None:
            return self.place(value)
        data = self._read(value, etype.size_for(PTR))
        if data is None:
            return pointee(f"VMFuncRef at {value:#x} (unreadable)", "VMFuncRef", address=f"{value:#x}",
                           readable=False)
        parts, fields = [], {}
        for sub in etype.subfields:
            at = etype.offset_of(sub.name, PTR)
            if sub.kind == "ptr":
                word = _u64(data, at)
                found = (None if not word else self.place(word, code=sub.role in CODE_ROLES, vmctx=True)
                         if sub.role in CODE_ROLES + ("vmctx",) else None)
                what = "null" if not word else found["text"] if found else ""
                parts.append(f"{sub.name} {word:#x}" + (f" ({what})" if what else ""))
                fields[sub.name] = {"value": f"{word:#x}", "points_to": found}
            else:
                word = int.from_bytes(data[at : at + 4], ORDER)
                parts.append(f"{sub.name} {word}")
                fields[sub.name] = word
        return pointee("VMFuncRef: " + ", ".join(parts), "VMFuncRef", address=f"{value:#x}", readable=True,
                       **fields)
