"""Which component shapes could have produced a dump of a debug-initialized context (seed layout).

The dump's size, magic, flag globals and poison pattern constrain the counts:
flag globals are 16-byte words with only the three flag bits and zero padding;
each anyfunc is poisoned (`INVALID_PTR, 0, 0`) or fully set (non-null
func_ptr and vmctx); each lowering is poisoned or set together with its
anyfunc; every pointer slot after them is `INVALID_PTR` or non-null. The
memories, reallocs and post-returns are indistinguishable from each other, so
any split of their total is a candidate.
"""

import re
from dataclasses import dataclass
from math import comb

import numpy as np

from ..constants import VMCOMPONENT_MAGIC
from ..errors import VMCtxEmuError
from ..memory.magic import magic_mismatch_message
from ..layouts.ptr import as_ptr_size, invalid_ptr
from ..memory.views import BYTE_ORDER_CHAR, EMULATED_PTR_SIZES
from ..layouts.releases import LAYOUTS, SEED, Component, VMComponentOffsets

__all__ = ["InferError", "Family", "Inference", "infer_shapes", "consistent_layouts"]

# Beyond this many flag-looking globals only the longest run is tried.
MAX_FLAG_RUN_TRIED = 64


class InferError(VMCtxEmuError, ValueError):
    """A dump that no seed-layout context can explain."""


@dataclass(frozen=True)
class Family:
    """Shapes with these counts and any split of `pointer_slots` into memories/reallocs/post-returns."""

    instances: int
    lowerings: int
    always_trap: int
    pointer_slots: int

    @property
    def count(self):
        return comb(self.pointer_slots + 2, 2)

    def shapes(self):
        for m in range(self.pointer_slots + 1):
            for r in range(self.pointer_slots - m + 1):
                yield Component(num_lowerings=self.lowerings, num_runtime_memories=m,
                                num_runtime_reallocs=r, num_runtime_post_returns=self.pointer_slots - m - r,
                                num_runtime_component_instances=self.instances,
                                num_always_trap=self.always_trap)


@dataclass
class Inference:
    families: list
    notes: list

    @property
    def count(self):
        return sum(f.count for f in self.families)

    def shapes(self, limit=None):
        n = 0
        for family in self.families:
            for shape in family.shapes():
                if limit is not None and n >= limit:
                    return
                yield shape
                n += 1


def _magic_checked(data, ptr, byte_order):
    """The dump as a 'B' memoryview, after checking it starts with the component magic."""
    raw = memoryview(bytes(data)).cast("B")
    if len(raw) < 4 or int.from_bytes(raw[:4], byte_order) != VMCOMPONENT_MAGIC:
        raise InferError(magic_mismatch_message(None, raw[:4], byte_order, ptr) if len(raw) >= 4
                         else f"a dump of {len(raw)} bytes is too short to hold the magic")
    return raw


def _flag_run(raw, start, byte_order, known_bits):
    """How many consecutive 16-byte flag globals (only `known_bits`, zero padding) start at `start`."""
    n = max(0, (len(raw) - start) // 16)
    if not n:
        return 0
    chunks = np.frombuffer(raw, dtype=np.uint8, count=16 * n, offset=start).reshape(n, 16)
    word = chunks[:, :4].copy().view(BYTE_ORDER_CHAR[byte_order] + "u4").ravel()
    ok = ((word & ~np.uint32(known_bits)) == 0) & (chunks[:, 4:] == 0).all(axis=1)
    return n if ok.all() else int(np.argmin(ok))


def _instance_counts_to_try(run):
    """Every count up to the run of flag globals, or only the full run when it is long."""
    return range(run, -1, -1) if run <= MAX_FLAG_RUN_TRIED else [run]


def infer_shapes(data, ptr, byte_order, address=None):
    ptr = as_ptr_size(ptr)
    if ptr not in EMULATED_PTR_SIZES:
        raise InferError(f"infer works for pointer sizes {EMULATED_PTR_SIZES}, got {int(ptr)}")
    raw = _magic_checked(data, ptr, byte_order)
    size = len(raw)
    empty = VMComponentOffsets(ptr, Component())
    if size < empty.size_of_vmctx():
        raise InferError(f"a dump of {size} bytes is shorter than the smallest context "
                         f"({empty.size_of_vmctx()} bytes for ptr_size={int(ptr)})")
    p = int(ptr)
    order = BYTE_ORDER_CHAR[byte_order]
    inv = invalid_ptr(ptr)

    run = _flag_run(raw, empty.region("flags").offset, byte_order, SEED.flag_mask)
    notes = []
    if run > MAX_FLAG_RUN_TRIED:
        notes.append(f"{run} flag-looking globals: only the full run was tried as num_runtime_component_instances")

    families = []
    for instances in _instance_counts_to_try(run):
        start = VMComponentOffsets(ptr, Component(num_runtime_component_instances=instances)).lowering_anyfuncs()
        rest = size - start
        if rest < 0 or rest % p:
            continue
        families += _after_flags(raw, start, rest // p, p, order, inv, address, instances)
    return Inference(families, notes)


def _after_flags(raw, start, nwords, p, order, inv, address, instances):
    words = np.frombuffer(raw, dtype=order + f"u{p}", count=nwords, offset=start).astype(np.uint64)
    inv = np.uint64(inv)
    nonzero = words != 0
    # Anyfunc triplets from the start: poisoned (INV, 0, 0) or set (func_ptr, vmctx non-null, not INV).
    ntrip = nwords // 3
    t = words[: 3 * ntrip].reshape(ntrip, 3)
    tb = np.frombuffer(raw, dtype=np.uint8, count=3 * ntrip * p, offset=start).reshape(ntrip, 3 * p)
    type_pad_zero = (tb[:, p + 4 : 2 * p] == 0).all(axis=1) if p > 4 else np.ones(ntrip, bool)
    poisoned_any = (t[:, 0] == inv) & (t[:, 1] == 0) & (t[:, 2] == 0)
    vm_ok = (t[:, 2] == np.uint64(address)) if address is not None else (t[:, 2] != 0) & (t[:, 2] != inv)
    set_any = (t[:, 0] != 0) & (t[:, 0] != inv) & vm_ok & type_pad_zero
    any_like = poisoned_any | set_any
    n_max = int(np.argmin(any_like)) if not any_like.all() else ntrip
    zeros = np.flatnonzero(~nonzero)
    lo = 0 if not len(zeros) else -(-(int(zeros[-1]) + 1) // 3)
    families = []
    for n_any in range(lo, n_max + 1):
        tail = words[3 * n_any :]
        m = len(tail)
        # Suffix: every word from j on is a pointer slot (non-null).
        bad_from = np.flatnonzero(tail == 0)
        first_ok_suffix = int(bad_from[-1]) + 1 if len(bad_from) else 0
        max_l = min(n_any, m // 2)
        pairs = tail[: 2 * max_l].reshape(max_l, 2)
        pair_poisoned = (pairs[:, 0] == inv) & (pairs[:, 1] == inv)
        pair_set = (pairs[:, 0] != 0) & (pairs[:, 0] != inv) & (pairs[:, 1] != inv)
        consistent = (pair_poisoned & poisoned_any[:max_l]) | (pair_set & set_any[:max_l])
        prefix_ok = np.concatenate(([True], np.logical_and.accumulate(consistent)))
        for lowerings in np.flatnonzero(prefix_ok).tolist():
            if 2 * lowerings >= first_ok_suffix:
                families.append(Family(instances, lowerings, n_any - lowerings, m - 2 * lowerings))
    return families


def _word_symbols(raw, start, p, byte_order, inv):
    """One letter per pointer-sized word: I (INVALID_PTR), Z (zero) or S (anything else)."""
    out = []
    for at in range(start, len(raw) - p + 1, p):
        word = int.from_bytes(raw[at : at + p], byte_order)
        out.append("I" if word == inv else "Z" if word == 0 else "S")
    return "".join(out)


def _element_pattern(field, p):
    """An element as a regex over word letters: freshly poisoned, or set (non-null first word)."""
    words = field.elem_type.size_for(p) // p
    fresh = []
    for w in range(words):
        sub = next((s for s in field.elem_type.subfields if field.sub_offset(s.name, p) // p == w), None)
        fresh.append("I" if sub is not None and sub.name in field.poison else "Z")
    return f"(?:{''.join(fresh)}|S{'.' * (words - 1)})"


def _tail_regex(layout, p, after):
    """Every array after the region `after`, in order, each any number of elements."""
    fields = layout.declared_fields()
    names = [f.name for f in fields]
    tail = fields[names.index(after) + 1 :]
    return re.compile("".join(f"(?:{_element_pattern(f, p)})*" for f in tail if f.count) + "$")


def _layout_fits(raw, layout, ptr, byte_order):
    """Whether a debug-initialized context of `layout` can have these bytes.

    The header pointers `initialize_vmctx` writes are set (non-null, not
    poison, both words of the store), the holes are zero, the flag globals
    hold only that release's bits with zero padding, and for some number of
    them the remaining words read as that release's arrays in order, each
    element poisoned as the runtime leaves it or set.
    """
    p = int(ptr)
    size = len(raw)
    inv = invalid_ptr(ptr)
    empty = layout.offsets(ptr)
    if size < empty.size_of_vmctx():
        return False
    fields = {f.name: f for f in layout.declared_fields()}
    flags_region = next(r for r in empty.regions() if r.count_name == "num_runtime_component_instances")
    covered = bytearray(flags_region.offset)
    covered[0:4] = b"\1" * 4
    for region in empty.regions():
        if region.offset >= flags_region.offset or fields[region.name].header_name() is None:
            continue
        for k in range(region.size // p):
            if int.from_bytes(raw[region.offset + k * p : region.offset + (k + 1) * p], byte_order) in (0, inv):
                return False
        covered[region.offset : region.end] = b"\1" * region.size
    if any(raw[i] for i in range(flags_region.offset) if not covered[i]):
        return False
    run = _flag_run(raw, flags_region.offset, byte_order, layout.flag_mask)
    has_task_may_block = "task_may_block" in fields
    last_fixed = "task_may_block" if has_task_may_block else flags_region.name
    tail = _tail_regex(layout, p, last_fixed)
    counts = dict.fromkeys(layout.count_names, 0)
    for instances in _instance_counts_to_try(run):
        counts["num_runtime_component_instances"] = instances
        offsets = layout.offsets(ptr, **counts)
        if has_task_may_block:
            at = offsets.task_may_block()
            block = bytes(raw[at : at + 16])
            if len(block) < 16 or int.from_bytes(block[:4], byte_order) not in (0, 1) or any(block[4:]):
                continue
        start = offsets.size_of_vmctx()
        if (size - start) % p == 0 and tail.match(_word_symbols(raw, start, p, byte_order, inv)):
            return True
    return False


def consistent_layouts(data, ptr, byte_order, layouts=None):
    """The release layouts (seed included, or only `layouts`) whose header and flags fit the dump."""
    ptr = as_ptr_size(ptr)
    raw = _magic_checked(data, ptr, byte_order)
    return [layout for layout in (LAYOUTS if layouts is None else layouts) if int(ptr) in layout.valid_ptr_sizes
            and _layout_fits(raw, layout, ptr, byte_order)]
