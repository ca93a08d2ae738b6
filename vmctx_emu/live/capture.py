"""What a capture keeps of a scan: every context listed, and the structures its pointers reach, read while
the target is open.

`read_capture(result, source)` follows, for each context with bytes, the
pointers whose pointee has a fixed size: the store context its header names
(`VMRuntimeLimits` / `VMStoreContext`, that release's declaration), each
runtime memory's `VMMemoryDefinition`, each runtime table's
`VMTableDefinition`, and every pointer to a func ref (reallocs, post-returns,
callbacks: `VMFuncRef`, or `VMCallerCheckedAnyfunc` before v9). Each
structure is read once however many contexts reach it (the contexts of one
store share its store context). Nothing is followed further: a memory's base
(its linear memory, what makes a core huge), host data and core `VMContext`s
are left where they are. Read-only, as every reader here; the files are
written by `vmctx_emu.capture.save_capture`.
"""

from dataclasses import dataclass, field

from ..dumps.store_context import decode_store_context
from ..errors import UnreadableMemoryError, VMCtxEmuError
from ..layouts.store_context import store_context_layout
from .shape import offsets_for, per_shape
from .store_context import store_context_pointer

__all__ = ["Reached", "CapturedContext", "Capture", "read_capture", "FOLLOWED"]

PTR, ORDER = 8, "little"  # the scanner's targets: 64-bit little-endian
# Roles of pointers to a structure of two pointer-sized words: its name and its words' names.
TWO_WORDS = {"memory": ("VMMemoryDefinition", ("base", "current_length")),
             "table": ("VMTableDefinition", ("base", "current_elements"))}
# Every role followed (func refs: the layout's own func ref type).
FOLLOWED = tuple(TWO_WORDS) + ("func_ref",)


@dataclass
class Reached:
    """One structure a context points at: `kind` (its Rust struct), `address`, `size`; `data` its bytes as
    read (None: `why` it could not be read); `fields` its words by name, as read (pointers and sizes as
    ints; a store context's as its release declares them)."""

    kind: str
    address: int
    size: int
    data: bytes = field(default=None, repr=False)
    fields: dict = field(default_factory=dict)
    why: str = None


@dataclass
class CapturedContext:
    """A context of the scan and what it reaches: (field label, `Reached`) per pointer followed."""

    context: object
    reaches: list = field(default_factory=list)


@dataclass
class Capture:
    """A scan's contexts (`CapturedContext`, in the scan's order) and every structure they reach, once each
    (`reached`, in the order first reached)."""

    result: object
    contexts: list
    reached: list

    @property
    def reached_bytes(self):
        return sum(len(r.data) for r in self.reached if r.data is not None)


def _label(field_, region, index, sub):
    """A record's field label as `decode` words it: `store_context`, `runtime_memories[0]`,
    `trampoline_func_refs[0].vmctx`."""
    text = field_.name + (f"[{index}]" if region.count_name is not None else "")
    return text + (f".{sub.name}" if len(field_.elem_type.subfields) > 1 else "")


class _Followed:
    """Where one shape keeps the pointers a capture follows: (role, field, region, sub, byte offset in
    the element)."""

    def __init__(self, layout, counts):
        self.pointers = []
        for f, region in zip(layout.declared_fields(), offsets_for(layout, counts).regions()):
            for sub in f.elem_type.subfields:
                if sub.kind == "ptr" and sub.role in FOLLOWED and region.count:
                    self.pointers.append((sub.role, f, region, sub, f.sub_offset(sub.name, PTR)))
        self.func_ref_type = next((f.elem_type for f in layout.declared_fields()
                                   if f.elem_type.role_sub("array_call") or f.elem_type.role_sub("func_ptr")), None)

    def each(self, data):
        """(role, label, value) of every non-null pointer followed."""
        for role, f, region, sub, at in self.pointers:
            for i in range(region.count):
                start = region.offset + i * region.elem_size + at
                value = int.from_bytes(data[start : start + PTR], ORDER)
                if value:
                    yield role, _label(f, region, i, sub), value


def _followed(layout, counts):
    return per_shape(_Followed, layout, counts)


class _Reader:
    """Reads each structure once, keyed by (kind, address, size)."""

    def __init__(self, src):
        self.src = src
        self.seen = {}
        self.order = []

    def get(self, kind, address, size, fields):
        key = (kind, address, size)
        if key not in self.seen:
            try:
                data = self.src.read(address, size)
            except UnreadableMemoryError as e:
                reached = Reached(kind, address, size, why=str(e))
            else:
                reached = Reached(kind, address, size, data, fields(data))
            self.seen[key] = reached
            self.order.append(reached)
        return self.seen[key]


def _words(names):
    def fields(data):
        return {name: int.from_bytes(data[i * PTR : (i + 1) * PTR], ORDER) for i, name in enumerate(names)}
    return fields


def _func_ref_fields(etype):
    def fields(data):
        out = {}
        for sub in etype.subfields:
            at = etype.offset_of(sub.name, PTR)
            width = PTR if sub.kind == "ptr" else 4
            out[sub.name] = int.from_bytes(data[at : at + width], ORDER)
        return out
    return fields


def _store_fields(release):
    def fields(data):
        try:
            decoded = decode_store_context(data, release, ptr=PTR, byte_order=ORDER)
        except VMCtxEmuError:
            return {}
        return {f.name: f.value for f in decoded.fields}
    return fields


def read_capture(result, src):
    """The `Capture` of `result` (a `ScanResult`) from `src`, the `MemorySource` it was scanned from, while
    it is open: each listed context with bytes and the structures its pointers reach (module doc)."""
    reader = _Reader(src)
    contexts = []
    for ctx in result.contexts:
        captured = CapturedContext(ctx)
        contexts.append(captured)
        if ctx.data is None:
            continue
        release = ctx.release or ctx.wasmtime
        found = store_context_pointer(ctx)
        if found is not None and found[1]:
            name, address = found
            layout = store_context_layout(release)
            captured.reaches.append((name, reader.get(layout.rust_struct, address, layout.size(PTR),
                                                      _store_fields(release))))
        plan = _followed(ctx.layout, ctx.counts)
        for role, label, value in plan.each(ctx.data):
            if value == ctx.address:
                continue
            if role == "func_ref":
                etype = plan.func_ref_type
                if etype is None:
                    continue
                reached = reader.get(etype.rust_name, value, etype.size_for(PTR), _func_ref_fields(etype))
            else:
                kind, names = TWO_WORDS[role]
                reached = reader.get(kind, value, len(names) * PTR, _words(names))
            captured.reaches.append((label, reached))
    return Capture(result, contexts, reader.order)
