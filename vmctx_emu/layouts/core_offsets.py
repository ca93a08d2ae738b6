"""The `VMOffsets` copy a core instance keeps before its `VMContext`, per release, declared once.

A core instance's `Instance` struct (`#[repr(C)]`, the `VMContext` last) held
`offsets: VMOffsets<HostPtr>` from before v0.40 to v3.0.1; at v4.0.0 the field
went (the offsets live in the module, behind `runtime_info`), and no later
release stores a copy next to the context. One `CoreOffsetsLayout` per range
of releases whose copy is the same: its counts and its precomputed offsets as
a literal list in the Rust order, each offset a `size(...)` or `align(...)`
entry as `vmoffsets.rs` lists them, so the offsets are recomputed, never
written down.

Read per release tag (`crates/environ/src/vmoffsets.rs`, `crates/runtime/src/
instance.rs`): v0.40.0 to v3.0.1 have the same `VMOffsets` fields and
calculation (v1.0.0 only moves the memory sizes to `PtrSize`) and the same
fields of `Instance` before the `VMContext`. `VMOffsets` is not `repr(C)`;
`HostPtr` takes no bytes, and the order of its `u32`s in memory and the
distance of the copy before the `VMContext` were measured in the x86_64
wasmtime-py wheels 0.40.0, 1.0.0, 2.0.0 and 3.0.0 (the same in each: the
declared order, the counts 240 bytes before the magic). The wheels 33.0.0 -
51.0.0 hold no copy there (measured; sources read to v48.0.0). A 4-byte
pointer's distance was not measured: unknown.
"""

from functools import lru_cache

from ..errors import InvalidPtrSizeError, UnknownReleaseError
from .record import Record
from .releases import release_key, release_of

__all__ = ["CoreOffsetsLayout", "CORE_OFFSETS_LAYOUTS", "core_offsets_layout", "core_offsets", "stored_words",
           "counts_from_copy", "P"]

P = "P"  # a size of one pointer: `ret.ptr.size()`
U32_MAX = 2**32 - 1


class CoreOffsetsLayout(Record):
    """The stored `VMOffsets` of one range of releases (`first` to `last`, patch releases included).

    `counts`: the `num_*` fields in order. `entries`: the precomputed offsets in
    order, each `("size", name, count, unit)` (the field takes `count` times
    `unit` bytes; `count` None for one, `unit` an int or a multiple of `P` as
    `(n, P)`) or `("align", n)` (`n` an int or `P`). The stored copy is the
    counts then every offset then `size`, all `u32`. `distance`: bytes from the
    copy's first count to the `VMContext`, `(ptr, bytes)` per measured pointer size.
    """

    id: str
    first: str
    last: str
    counts: tuple
    entries: tuple
    distance: tuple
    changes: str

    def distance_for(self, ptr):
        """Bytes from the copy to the `VMContext` for pointer size `ptr`, or None where not measured."""
        return dict(self.distance).get(ptr)

    @property
    def range_text(self):
        return f"v{self.first} - v{self.last}"

    @property
    def offset_names(self):
        return tuple(e[1] for e in self.entries if e[0] == "size") + ("size",)

    def words(self):
        """How many `u32`s the stored copy holds."""
        return len(self.counts) + len(self.offset_names)

    def __repr__(self):
        return f"<CoreOffsetsLayout {self.id} ({self.range_text})>"


def _bytes(unit, ptr):
    return unit[0] * ptr if isinstance(unit, tuple) else ptr if unit == P else unit


def _checked(value):
    """`cadd`/`cmul` in Rust unwrap a checked u32 operation: past u32::MAX the runtime panics."""
    if value > U32_MAX:
        raise OverflowError(f"{value} overflows the u32 offsets")
    return value


@lru_cache(maxsize=None)
def _core_offsets(layout, counts, ptr):
    values = dict(zip(layout.counts, counts))
    cursor, out = 0, {}
    for entry in layout.entries:
        if entry[0] == "align":
            align = _bytes(entry[1], ptr)
            # `align(offset, width)` rounds up to a power of two
            cursor = _checked(-(-cursor // align) * align)
            continue
        _, name, count, unit = entry
        out[name] = cursor
        cursor = _checked(cursor + _checked((1 if count is None else values[count]) * _bytes(unit, ptr)))
    out["size"] = cursor
    return out


def core_offsets(layout, counts, ptr=8):
    """Every precomputed offset (and `size`) of a `VMContext` with `counts` ({name: n}, missing ones 0)."""
    if isinstance(ptr, bool) or not isinstance(ptr, int) or ptr <= 0 or ptr & (ptr - 1):
        raise InvalidPtrSizeError(f"pointer size must be a power of two, got {ptr!r}")
    unknown = set(counts) - set(layout.counts)
    if unknown:
        raise ValueError(f"{layout.id}: no such count {sorted(unknown)}")
    return dict(_core_offsets(layout, tuple(counts.get(name, 0) for name in layout.counts), ptr))


def stored_words(layout, counts, ptr=8):
    """The `u32`s of the copy Wasmtime stores for `counts`: the counts, then every offset, then the size."""
    offsets = core_offsets(layout, counts, ptr)
    return tuple(counts.get(name, 0) for name in layout.counts) + tuple(offsets[n] for n in layout.offset_names)


def counts_from_copy(layout, words, ptr=8):
    """The counts of a stored copy (`words`, its `u32`s), or None unless every stored offset is reproduced."""
    if len(words) != layout.words():
        return None
    counts = dict(zip(layout.counts, words))
    try:
        expected = stored_words(layout, counts, ptr)
    except OverflowError:
        return None
    return counts if tuple(words) == expected else None


COUNTS_40 = ("num_imported_functions", "num_imported_tables", "num_imported_memories", "num_imported_globals",
             "num_defined_tables", "num_defined_memories", "num_owned_memories", "num_defined_globals",
             "num_escaped_funcs")

ENTRIES_40 = (
    ("size", "magic", None, 4),
    ("align", P),
    ("size", "runtime_limits", None, P),
    ("size", "callee", None, P),
    ("size", "epoch_ptr", None, P),
    ("size", "externref_activations_table", None, P),
    ("size", "store", None, (2, P)),
    ("size", "builtin_functions", None, P),
    ("size", "signature_ids", None, P),
    ("size", "imported_functions", "num_imported_functions", (2, P)),  # VMFunctionImport
    ("size", "imported_tables", "num_imported_tables", (2, P)),  # VMTableImport
    ("size", "imported_memories", "num_imported_memories", (3, P)),  # VMMemoryImport
    ("size", "imported_globals", "num_imported_globals", P),  # VMGlobalImport
    ("size", "defined_tables", "num_defined_tables", (2, P)),  # VMTableDefinition
    ("size", "defined_memories", "num_defined_memories", P),  # *mut VMMemoryDefinition
    ("size", "owned_memories", "num_owned_memories", (2, P)),  # VMMemoryDefinition
    ("align", 16),
    ("size", "defined_globals", "num_defined_globals", 16),  # VMGlobalDefinition
    ("size", "defined_anyfuncs", "num_escaped_funcs", (3, P)),  # VMCallerCheckedAnyfunc
)

CORE_OFFSETS_LAYOUTS = (
    CoreOffsetsLayout(
        id="C1", first="0.40.0", last="3.0.1", counts=COUNTS_40, entries=ENTRIES_40, distance=((8, 240),),
        changes="`Instance` holds `offsets: VMOffsets<HostPtr>` after `runtime_info`, 240 bytes before the "
                "`VMContext` on x86_64 (measured in wasmtime-py 0.40.0, 1.0.0, 2.0.0, 3.0.0)"),
)


def core_offsets_layout(version):
    """The `CoreOffsetsLayout` of a release, or None: no copy before its core `VMContext` is known (v4.0.0 on
    keep none; the seed and unlisted releases were not verified)."""
    try:
        key = release_key(release_of(version))
    except UnknownReleaseError:  # the seed or a name no release has: no copy known
        return None
    for layout in CORE_OFFSETS_LAYOUTS:
        if release_key(layout.first) <= key <= release_key(layout.last):
            return layout
    return None
