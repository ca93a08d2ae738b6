"""Decode a context's bytes into records and anomalies, through numpy views (no per-byte loop).

Decoding only: turning codes into words is `describe.py`'s job.
"""

from dataclasses import dataclass

import numpy as np

from ..constants import VMCOMPONENT_MAGIC
from ..memory.magic import magic_mismatch_message
from ..layouts.fields import Header
from ..layouts.ptr import invalid_ptr

__all__ = ["Interp", "RECORD_DTYPE", "Column", "Anomaly", "Decoded", "decode", "decode_many", "padding_differences",
           "interpretation_codes", "as_u64"]


class Interp:
    """Interpretation codes stored per record."""

    VALUE = 0        # a plain number (type_index)
    MAGIC_OK = 1
    MAGIC_BAD = 2
    FLAGS = 3
    POISON = 4       # INVALID_PTR: unset (debug poison)
    NULL = 5
    POINTER = 6      # set, not followed
    OWN_VMCTX = 7    # an anyfunc's vmctx equal to this context's address
    OTHER_VMCTX = 8  # an anyfunc's vmctx that is not this context

    NAMES = ("value", "magic_ok", "magic_bad", "flags", "unset_poison", "null", "pointer",
             "own_vmctx", "other_vmctx")


# Widest field first so every field is naturally aligned (24-byte records).
RECORD_DTYPE = np.dtype([("value", "<u8"), ("offset", "<u4"), ("index", "<u4"),
                         ("column", "<u2"), ("interp", "u1")], align=True)


@dataclass(frozen=True)
class Column:
    """One sub-field of one region: records carry its number."""

    region: str
    sub: str
    kind: str
    role: str
    is_array: bool
    single: bool  # the element has only this sub-field

    def label(self, index):
        base = f"{self.region}[{index}]" if self.is_array else self.region
        return base if self.single else f"{base}.{self.sub}"


@dataclass(frozen=True)
class Anomaly:
    kind: str
    offset: int
    message: str

    def to_dict(self):
        return {"kind": self.kind, "offset": self.offset, "message": self.message}


class Decoded:
    """Records in memory order, the columns they refer to, and what looked wrong.

    `decode` keeps numpy views over the context's own bytes (`values`: one per
    region and sub-field) and finds the anomalies from them; `records` (one
    24-byte row per sub-field of every element) and `covered` are built from
    those views the first time they are asked for, so decoding a large dump
    costs a few passes over its bytes and no copy of them.
    """

    def __init__(self, ctx, columns, blocks, values, anomalies):
        self.ctx = ctx
        self.columns = columns
        self.blocks = blocks    # (field, region, first column number) in memory order
        self.values = values    # (region, sub) -> numpy view of that sub-field of every element
        self.anomalies = anomalies
        self._records = None
        self._covered = None

    def __len__(self):
        return sum(region.count * len(field.elem_type.subfields) for field, region, _ in self.blocks)

    @property
    def records(self):
        """Every record as one structured array (`RECORD_DTYPE`), built once on first use."""
        if self._records is None:
            parts = [self.block_records(field, region, first, 0, region.count)
                     for field, region, first in self.blocks if region.count]
            self._records = np.concatenate(parts) if parts else np.empty(0, RECORD_DTYPE)
        return self._records

    def block_records(self, field, region, first, start, stop):
        """The records of elements `start:stop` of one region, in memory order."""
        ctx = self.ctx
        subs = field.elem_type.subfields
        n = stop - start
        rec = np.empty((n, len(subs)), dtype=RECORD_DTYPE)
        index = np.arange(start, stop, dtype=np.uint32)
        starts = region.offset + index * np.uint32(region.elem_size)
        for k, (sub, (values, codes)) in enumerate(zip(subs, self.element_columns(field, start, stop))):
            col = rec[:, k]
            col["column"] = first + k
            col["index"] = index
            col["offset"] = starts + np.uint32(field.sub_offset(sub.name, ctx.ptr))
            col["value"] = values
            col["interp"] = codes
        return rec.reshape(-1)

    def element_columns(self, field, start, stop):
        """Per sub-field of `field`, (values as u64, `Interp` codes as u8) of its elements `start:stop`."""
        out = []
        for sub in field.elem_type.subfields:
            values = as_u64(self.values[(field.name, sub.name)][start:stop], sub.kind)
            out.append((values, interpretation_codes(sub, values, self.ctx).astype(np.uint8)))
        return out

    def chunks(self, size=1 << 16):
        """The records in memory order as structured arrays of about `size` rows (for streaming)."""
        if self._records is not None:
            for at in range(0, len(self._records), size):
                yield self._records[at:at + size]
            return
        for field, region, first in self.blocks:
            step = max(1, size // len(field.elem_type.subfields))
            for start in range(0, region.count, step):
                yield self.block_records(field, region, first, start, min(region.count, start + step))

    @property
    def covered(self):
        """Bool per byte: inside some record (else padding)."""
        if self._covered is None:
            self._covered = _covered(self.ctx, self.blocks)
        return self._covered

    def label(self, record):
        return self.columns[record["column"]].label(int(record["index"]))


def _covered(ctx, blocks):
    covered = np.zeros(len(ctx.memory), dtype=bool)
    for field, region, _ in blocks:
        if region.count:
            covered[region.offset : region.end] = np.tile(_element_mask(field, region, ctx.ptr), region.count)
    return covered


def _element_mask(field, region, ptr):
    """Bool per byte of one element: inside one of its sub-fields."""
    mask = np.zeros(region.elem_size, dtype=bool)
    for sub in field.elem_type.subfields:
        at = field.sub_offset(sub.name, ptr)
        mask[at : at + sub.width(ptr)] = True
    return mask


def _columns_and_blocks(ctx):
    columns, blocks = [], []
    for field, region in zip(ctx.layout.declared_fields(), ctx.offsets.regions()):
        etype = field.elem_type
        subs = etype.subfields
        first = len(columns)
        for sub in subs:
            columns.append(Column(field.name, sub.name, sub.kind, sub.role, field.count is not None,
                                  len(subs) == 1))
        blocks.append((field, region, first))
    return columns, blocks


def interpretation_codes(sub, values, ctx):
    """The `Interp` code of each of `values` (one sub-field's, as u64) in `ctx`."""
    return _interp(sub, values, invalid_ptr(ctx.ptr), ctx.vmctx)


def _interp(sub, values, invalid, vmctx):
    """`vmctx`: the context's address (None: unknown), or a column of them for (contexts, elements) values."""
    if sub.role == "magic":
        return np.where(values == VMCOMPONENT_MAGIC, Interp.MAGIC_OK, Interp.MAGIC_BAD)
    if sub.role == "flags":
        return np.full(values.shape, Interp.FLAGS)
    if sub.kind != "ptr":
        return np.full(values.shape, Interp.VALUE)
    set_code = Interp.POINTER
    if sub.role == "vmctx" and vmctx is not None:
        set_code = np.where(values == vmctx, Interp.OWN_VMCTX, Interp.OTHER_VMCTX)
    return np.where(values == np.uint64(invalid), Interp.POISON, np.where(values == 0, Interp.NULL, set_code))


def as_u64(arr, kind):
    """A sub-field's values as u64 (an i32 flag word as its unsigned 32 bits, as records store it)."""
    if kind == "i32":
        arr = arr.astype(np.int64) & 0xFFFFFFFF
    return arr.astype(np.uint64)


class _Plan:
    """What decoding any context of one shape needs, worked out once from one of them: its columns and
    blocks, where each sub-field's values lie (start, count, stride, dtype), its padding bytes, and every
    record's column, index and offset (a template the values and codes are filled into)."""

    def __init__(self, ctx):
        self.columns, self.blocks = _columns_and_blocks(ctx)
        self.size = ctx.offsets.size_of_vmctx()
        self.places = []  # (field, sub, start, count, stride, dtype, record positions)
        at = 0
        for field, region, _ in self.blocks:
            subs = field.elem_type.subfields
            if region.count:
                for k, sub in enumerate(subs):
                    dtype = ctx.subview(field.name, sub.name).dtype
                    self.places.append((field, sub, region.offset + field.sub_offset(sub.name, ctx.ptr),
                                        region.count, region.elem_size, dtype,
                                        slice(at + k, at + region.count * len(subs), len(subs))))
            at += region.count * len(subs)
        self.records = at
        self.small = self.size <= _BATCHED_SIZE
        if self.small:  # what batches need; a large context is decoded alone
            self.covered = _covered(ctx, self.blocks)
            self.covered.flags.writeable = False
            self.padding = np.flatnonzero(~self.covered)
            self.template = Decoded(ctx, self.columns, self.blocks, _values(self, ctx.memory), []).records.copy()


# Contexts up to this size are decoded in batches (`decode_many`); larger ones one at a time.
_BATCHED_SIZE = 1 << 16
_PLANS = {}
_PLANS_KEPT = 256


def _plan_of(ctx):
    key = (id(ctx.layout), tuple(ctx.offsets.component.counts().values()), int(ctx.ptr), ctx.byte_order)
    found = _PLANS.get(key)
    if found is None:
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        found = _PLANS[key] = (ctx.layout, _Plan(ctx))  # the layout kept: its id in the key stays its own
    return found[1]


def _values(plan, raw, rows=None):
    """(region, sub) -> a strided view of that sub-field of every element over `raw` (one context's bytes,
    or `rows` contexts' one after another: then each view is (rows, elements)). Pointers and u32s are
    compared as they are (no copy); the i32 flag word is read as its unsigned 32 bits, as records store it."""
    out = {}
    for field, sub, start, count, stride, dtype, _ in plan.places:
        shape, strides = ((count,), (stride,)) if rows is None else ((rows, count), (plan.size, stride))
        view = np.ndarray(shape, dtype, raw, start, strides)
        out[(field.name, sub.name)] = as_u64(view, sub.kind) if sub.kind == "i32" else view
    return out


def decode(ctx):
    """Decode a live instance or a loaded dump into a `Decoded` (views over its bytes, anomalies found)."""
    plan = _plan_of(ctx)
    raw = ctx.memory
    values_by = _values(plan, raw)
    found = _anomalies(ctx, raw, plan.blocks, values_by)
    guessed = (getattr(ctx, "origin", None) or {}).get("guessed")
    if guessed:  # a captured context whose shape the scan guessed says so, as the scan did
        found.insert(0, Anomaly("guessed_shape", 0, guessed))
    return Decoded(ctx, plan.columns, plan.blocks, values_by, found)


def decode_many(ctxs):
    """`[decode(c) for c in ctxs]`, for contexts of one shape (layout, counts, pointer size, byte order),
    in one pass over their bytes side by side: the records of all at once, and the anomalies looked for
    in a context only where a check over all of them flags it (the same checks `decode` makes)."""
    ctxs = list(ctxs)
    if not ctxs:
        return []
    plan = _plan_of(ctxs[0])
    same = all(_plan_of(c) is plan for c in ctxs)
    addresses = [c.vmctx for c in ctxs]
    if len(ctxs) == 1 or not plan.small or not same or (None in addresses and any(addresses)):
        return [decode(c) for c in ctxs]
    n = len(ctxs)
    raw = np.frombuffer(b"".join(c.memory for c in ctxs), np.uint8)
    values = _values(plan, raw, n)
    vmctx = None if addresses[0] is None else np.array(addresses, np.uint64)[:, None]
    flagged = _flagged(ctxs[0], plan, raw.reshape(n, plan.size), values, vmctx)
    records = np.empty((n, plan.records), RECORD_DTYPE)
    records[:] = plan.template
    invalid = invalid_ptr(ctxs[0].ptr)
    for field, sub, _, _, _, _, at in plan.places:
        v = values[(field.name, sub.name)]
        records["value"][:, at] = v
        records["interp"][:, at] = _interp(sub, v, invalid, vmctx)
    out = []
    for i, ctx in enumerate(ctxs):
        row = {key: v[i] for key, v in values.items()}
        found = _anomalies(ctx, ctx.memory, plan.blocks, row) if flagged[i] else []
        decoded = Decoded(ctx, plan.columns, plan.blocks, row, found)
        decoded._records, decoded._covered = records[i], plan.covered
        out.append(decoded)
    return out


def _flagged(ctx, plan, rows, values, vmctx):
    """Per context (a row of `rows`), whether any check `_anomalies` makes may find something in it: a
    superset, so the others are known to have no anomaly. A debug build's setter checks are all made."""
    n = len(rows)
    if ctx.debug_assertions:
        return np.ones(n, bool)
    order = "<" if ctx.byte_order == "little" else ">"
    flagged = rows[:, :4].copy().view(order + "u4")[:, 0] != VMCOMPONENT_MAGIC
    if len(plan.padding):
        flagged |= rows[:, plan.padding].any(axis=1)
    flags = values.get((ctx.layout.flags_field().name, "flags"))
    if flags is not None:
        flagged |= (flags & ~np.uint64(ctx.layout.flag_mask) != 0).any(axis=1)
        bits = {name: bit for bit, name in ctx.layout.flag_bits}
        if "MAY_ENTER" in bits and "NEEDS_POST_RETURN" in bits:
            both = np.uint64(bits["MAY_ENTER"] | bits["NEEDS_POST_RETURN"])
            flagged |= ((flags & both) == both).any(axis=1)
    invalid = np.uint64(invalid_ptr(ctx.ptr))
    for v in values.values():
        flagged |= (v == invalid).any(axis=1)
    if vmctx is not None:
        for field, _, _ in plan.blocks:
            vmctx_sub = field.elem_type.role_sub("vmctx")
            if vmctx_sub is None or (field.name, vmctx_sub.name) not in values:
                continue
            first = values[(field.name, field.elem_type.subfields[0].name)]
            flagged |= ((first != invalid) & (first != 0) & (values[(field.name, vmctx_sub.name)] != vmctx)).any(axis=1)
    return flagged


def padding_differences(old, new):
    """(start, stop) runs of padding bytes that differ between two decodes of one layout."""
    a = np.frombuffer(old.ctx.memory, np.uint8)
    b = np.frombuffer(new.ctx.memory, np.uint8)
    return _runs((a != b) & ~old.covered)


def _runs(mask):
    """(start, stop) of each run of True in a 1-d bool array."""
    if not mask.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _where(ctx, offset):
    for r in ctx.offsets.regions():
        if r.offset - r.padding_before <= offset < r.offset:
            return f"the hole before {r.name}"
        if r.offset <= offset < r.end:
            if r.count_name is None:
                return r.name
            return f"{r.name}[{(offset - r.offset) // r.elem_size}]"
    return "past the last field"


def _listed(kind, indices, describe, limit=8):
    """One anomaly per index (a list or an int array), up to `limit`, then one that counts the rest."""
    out = [describe(int(i)) for i in indices[:limit]]
    if len(indices) > limit:
        out.append(Anomaly(kind, out[-1].offset, f"... and {len(indices) - limit} more {kind} anomalies"))
    return out


def _aligned_pieces(start, stop):
    """[start, stop) as (offset, width) pieces of 8, 4, 2 or 1 bytes, each aligned to its width."""
    while start < stop:
        width = next(w for w in (8, 4, 2, 1) if start % w == 0 and start + w <= stop)
        yield start, width
        start += width


def _padding_dirty(ctx, raw, blocks):
    """Whether any padding byte is non-zero, from strided views of each element's holes (no byte mask)."""
    at = 0
    for field, region, _ in sorted(blocks, key=lambda b: b[1].offset):
        if not region.count:
            continue
        if region.offset > at and any(raw[at:region.offset]):
            return True
        at = max(at, region.end)
        mask = _element_mask(field, region, ctx.ptr)
        if mask.all():
            continue
        size, n = region.elem_size, region.count
        for start, stop in _runs(~mask):
            for piece, width in _aligned_pieces(start, stop):
                if size % width:
                    width = 1
                count = ((n - 1) * size) // width + 1
                column = np.frombuffer(raw, dtype=f"u{width}", count=count, offset=region.offset + piece)
                if column[:: size // width].any():
                    return True
    return at < len(raw) and any(raw[at:])


class _Poisoned(dict):
    """(region, sub) -> bool array "holds INVALID_PTR", computed the first time a key is asked for."""

    def __init__(self, values_by, invalid):
        super().__init__()
        self._values, self.invalid = values_by, invalid

    def __missing__(self, key):
        mask = self[key] = self._values[key] == self.invalid
        return mask

    def __contains__(self, key):
        return key in self._values


def _anomalies(ctx, raw, blocks, values_by):
    found = []
    magic = raw[:4]
    if int.from_bytes(magic, ctx.byte_order) != VMCOMPONENT_MAGIC:
        found.append(Anomaly("bad_magic", 0, magic_mismatch_message(ctx.vmctx, magic, ctx.byte_order, ctx.ptr)))

    if _padding_dirty(ctx, raw, blocks):
        data = np.frombuffer(raw, dtype=np.uint8)
        for start, stop in _runs((data != 0) & ~_covered(ctx, blocks))[:8]:
            found.append(Anomaly("padding", start, f"non-zero padding bytes at offsets {start}..{stop - 1} "
                                                   f"(in {_where(ctx, start)}): {bytes(raw[start:stop]).hex(' ')}"))

    name = ctx.layout.flags_field().name
    flags = values_by.get((name, "flags"))
    if flags is not None:
        bad = np.flatnonzero(flags & ~np.uint64(ctx.layout.flag_mask))
        names = "|".join(n for _, n in ctx.layout.flag_bits)
        found += _listed("flag_bits", bad, lambda i: Anomaly(
            "flag_bits", _offset_of(ctx, name, "flags", i),
            f"{name}[{i}] = {int(flags[i]):#010x} has bits beyond {names}"))
        found += _flag_state_anomalies(ctx, name, flags)

    poisoned = _Poisoned(values_by, np.uint64(invalid_ptr(ctx.ptr)))
    if not ctx.debug_assertions:
        for region, sub in values_by:
            idx = np.flatnonzero(poisoned[(region, sub)])
            found += _listed("release_poison", idx, lambda i, r=region, s=sub: Anomaly(
                "release_poison", _offset_of(ctx, r, s, i),
                f"{r}[{i}].{s} holds INVALID_PTR in a dump marked release (no poison is written)"))
    else:
        found += _debug_anomalies(ctx, values_by, poisoned, blocks)

    for field, _, _ in blocks:
        for sub, value in field.init:
            if isinstance(value, Header) and values_by[(field.name, sub)][0] == poisoned.invalid:
                found.append(Anomaly("poison_elsewhere", _offset_of(ctx, field.name, sub, 0),
                                     f"{field.name}.{sub} holds INVALID_PTR, which the runtime never writes there"))

    if ctx.vmctx is not None:
        for field, _, _ in blocks:
            vmctx_sub = field.elem_type.role_sub("vmctx")
            if vmctx_sub is None or (field.name, vmctx_sub.name) not in values_by:
                continue
            region, first = field.name, field.elem_type.subfields[0].name
            vm = values_by[(region, vmctx_sub.name)]
            fp = values_by[(region, first)]
            idx = np.flatnonzero((fp != poisoned.invalid) & (fp != 0) & (vm != np.uint64(ctx.vmctx)))
            found += _listed("foreign_vmctx", idx, lambda i, r=region, v=vm, s=vmctx_sub.name: Anomaly(
                "foreign_vmctx", _offset_of(ctx, r, s, i),
                f"{r}[{i}].{s} = {int(v[i]):#x} is not this context "
                f"({ctx.vmctx:#x}); the runtime always stores its own address"))
    return found


def _flag_state_anomalies(ctx, name, flags):
    """Flag words no runtime of the release leaves behind, at rest or mid-call.

    Every protocol with MAY_ENTER (`runtime/protocols.py`: up to v41) sets
    NEEDS_POST_RETURN only after `Func::call` cleared MAY_ENTER, and sets
    MAY_ENTER again only after `post_return` cleared NEEDS_POST_RETURN (fused
    adapters touch MAY_ENTER and MAY_LEAVE only): both set is never seen.
    """
    bits = {n: bit for bit, n in ctx.layout.flag_bits}
    if "MAY_ENTER" not in bits or "NEEDS_POST_RETURN" not in bits:
        return []
    both = np.uint64(bits["MAY_ENTER"] | bits["NEEDS_POST_RETURN"])
    idx = np.flatnonzero((flags & both) == both).tolist()
    return _listed("flag_state", idx, lambda i: Anomaly(
        "flag_state", _offset_of(ctx, name, "flags", i),
        f"{name}[{i}] = {int(flags[i]):#010x} has MAY_ENTER and NEEDS_POST_RETURN both set, which no "
        f"{ctx.layout.range_text} runtime does: Func::call clears MAY_ENTER before it sets NEEDS_POST_RETURN, "
        "post_return clears NEEDS_POST_RETURN before it sets MAY_ENTER again"))


def _offset_of(ctx, region, sub, index):
    r = ctx.offsets.region(region)
    return r.offset + index * r.elem_size + ctx.layout.field(region).sub_offset(sub, ctx.ptr)


def _debug_anomalies(ctx, values_by, poisoned, blocks):
    """Debug builds: what one runtime setter writes is either all still fresh or all set.

    Fresh is how `initialize_vmctx` leaves it (poisoned sub-fields INVALID_PTR,
    the rest zero); set is no sub-field INVALID_PTR. Anything in between is
    "partly_set". A poisoned sub-field whose setter never writes null but
    holds null is "null_slot".
    """
    found = []
    counts = {f.name: r.count for f, r, _ in blocks}
    for spec in ctx.layout.setters:
        written = [(a.field, sub) for a in spec.args for sub in a.subs]
        written += [(f, ctx.layout.field(f).elem_type.role_sub("vmctx").name) for f in spec.fields
                    if ctx.layout.field(f).elem_type.role_sub("vmctx")]
        if not counts.get(spec.fields[0]):
            continue
        poison = [(f, s) for f in spec.fields for s in ctx.layout.field(f).poison]
        rest = [key for key in written if key not in poison]
        any_poison = np.any([poisoned[k] for k in poison], axis=0)
        all_poison = np.all([poisoned[k] for k in poison], axis=0)
        rest_zero = np.all([values_by[k] == 0 for k in rest], axis=0) if rest else True
        fresh = all_poison & rest_zero
        mixed = np.flatnonzero(any_poison & ~fresh)

        def partly(i, spec=spec, keys=poison + rest):
            parts = ", ".join(f"{f}[{i}].{s} " + ("poisoned" if (f, s) in poisoned and poisoned[(f, s)][i]
                                                   else f"{int(values_by[(f, s)][i]):#x}") for f, s in keys)
            return Anomaly("partly_set", _offset_of(ctx, keys[0][0], keys[0][1], i),
                           f"{spec.name}({i}) is partly done ({parts}); the runtime writes these together")

        found += _listed("partly_set", mixed, partly)
        for f, s in poison:
            if ctx.layout.field(f).elem_type.sub(s).null == "allowed":
                continue
            nulls = np.flatnonzero(values_by[(f, s)] == 0)
            found += _listed("null_slot", nulls, lambda i, f=f, s=s: Anomaly(
                "null_slot", _offset_of(ctx, f, s, i),
                f"{f}[{i}].{s} is null in a debug dump: initialization leaves INVALID_PTR "
                f"there and {spec.name} never writes null"))
    return found


# The names describe.py imports until it reads the public ones (the describe/ package it moves to).
