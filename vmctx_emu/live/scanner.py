"""Find, identify and decode every component context in a real Wasmtime: this process, a pid, a core.

Nothing here writes to the target. The release comes from the Wasmtime image
mapped in it (its embedded version string) unless given. A context is a
16-byte-aligned `VMCOMPONENT_MAGIC` whose header pointers land where that
release's runtime points them: the builtins table inside the Wasmtime image,
the store context in writable memory. Its shape is the copy of
`VMComponentOffsets` the runtime keeps just before the context, accepted only
when our calculator reproduces every stored offset from the stored counts.
"""

import bisect
import os
from dataclasses import dataclass, field

import numpy as np

from ..constants import VMCOMPONENT_MAGIC
from ..dumps.decode import Interp, decode
from ..dumps.dump import DumpedContext
from ..errors import LayoutOverflowError, UnknownReleaseError, VMCtxEmuError
from ..layouts.releases import wasmtime_layout
from ..layouts.types import CODE_ROLES
from .identify import wasmtime_version_in
from .sources import UnreadableMemoryError, open_source

__all__ = ["ScanError", "LiveContext", "ScanResult", "scan", "STORED_WINDOW"]

PTR = 8
ORDER = "little"
# How far before a context the stored `VMComponentOffsets` copy is looked for.
STORED_WINDOW = 512
# Counts above this are not a component's (a stored copy is u32 counts of real arrays).
PLAUSIBLE_COUNT = 1 << 24
# Header pointers into Wasmtime's own image (static tables); the rest point into writable memory.
IMAGE_HEADERS = ("builtins", "libcalls", "transcode_libcalls")
# Overlap between chunks when looking for the version string, so no string is cut in two.
VERSION_OVERLAP = 64
# `ComponentInstance` keeps the context's own address this far before it (measured, v39-v50).
SELF_POINTER_AT = -16


class ScanError(VMCtxEmuError):
    """A scan that cannot start: no Wasmtime in the target, or an unsupported release."""


@dataclass
class LiveContext:
    """One context found: where, which release and shape (and how it was recovered), decoded."""

    address: int
    wasmtime: str
    layout: object
    counts: dict = None
    shape_from: str = None
    decoded: object = None
    points_to: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self):
        from ..describe import decoded_doc

        doc = decoded_doc(self.decoded, self.points_to) if self.decoded is not None else {
            "layout": {"layout": self.layout.id, "wasmtime": self.wasmtime, "address": f"{self.address:#x}",
                       "counts": self.counts, "size_of_vmctx": None}, "records": [], "anomalies": []}
        doc.pop("schema_version", None)
        doc["shape_from"] = self.shape_from
        doc["notes"] = list(self.notes)
        return doc


@dataclass
class ScanResult:
    source: str
    wasmtime: str
    wasmtime_from: str
    contexts: list
    notes: list

    def to_dict(self):
        return {"schema_version": 1, "source": self.source,
                "wasmtime": {"version": self.wasmtime, "from": self.wasmtime_from},
                "contexts": [c.to_dict() for c in self.contexts], "notes": list(self.notes)}


class _Map:
    """The target's mappings, for asking which one holds an address."""

    def __init__(self, mappings):
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self.starts = [m.start for m in self.mappings]

    def find(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None


def _image_mappings(mappings):
    """Mappings of files named like Wasmtime (libwasmtime.so, wasmtime-py's _libwasmtime.so, the CLI)."""
    return [m for m in mappings if m.path and "wasmtime" in os.path.basename(m.path).lower()]


def _find_version(src, images):
    """The version embedded in the mapped Wasmtime image, and where it was read."""
    for m in images:
        if not m.readable:
            continue
        tail = b""
        try:
            for _, chunk in src.iter_chunks(m):
                found = wasmtime_version_in(tail + chunk)
                if found:
                    return found, f"version string in {m.path} mapped at {m.start:#x}"
                tail = chunk[-VERSION_OVERLAP:]
        except UnreadableMemoryError:
            continue
    for path in dict.fromkeys(m.path for m in images):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                found = wasmtime_version_in(f.read())
            if found:
                return found, f"version string in {path} (read from disk: not in the target's memory)"
    return None, None


def _u64(data, at):
    return int.from_bytes(data[at : at + PTR], ORDER)


def _header_fits(data, layout, offsets, image, memory):
    """Every header pointer where the release's runtime points it."""
    for f in layout.declared_fields():
        name = f.header_name()
        if name is None:
            continue
        region = offsets.region(f.name)
        for sub in f.elem_type.subfields:
            at = region.offset + f.sub_offset(sub.name, PTR)
            if at + PTR > len(data):
                return False
            value = _u64(data, at)
            m = memory.find(value)
            if m is None:
                return False
            if name in IMAGE_HEADERS or sub.name == "vtable":
                if not any(i.start <= value < i.end for i in image):
                    return False
            elif not m.writable:
                return False
    return True


def _stored_variants(layout, offsets):
    """What Rust stores after the counts: every region's offset then the size, or (v49+) from the flags on."""
    regions = offsets.regions()
    names = [r.name for r in regions]
    flags = names.index(layout.flags_field().name)
    size = offsets.size_of_vmctx()
    return ([r.offset for r in regions] + [size], [r.offset for r in regions[flags:]] + [size])


def _stored_shape(src, layout, address):
    """(counts, where) from the stored `VMComponentOffsets` copy, or (None, why)."""
    start = max(0, address - STORED_WINDOW)
    try:
        window = src.read(start, address - start)
    except UnreadableMemoryError as e:
        return None, f"the {address - start} bytes before it cannot be read ({e})"
    words = np.frombuffer(window[: len(window) // 4 * 4], "<u4")
    names = layout.count_names
    n = len(names)
    # What a copy stores first does not depend on the counts: magic's 0, or (v49+) the flags' offset.
    empty = layout.offsets(PTR)
    firsts = {stored[0] for stored in _stored_variants(layout, empty)}
    for q in range(len(words) - n - 1, -1, -1):
        if int(words[q + n]) not in firsts:
            continue
        counts = words[q : q + n]
        if (counts >= PLAUSIBLE_COUNT).any():
            continue
        shape = dict(zip(names, (int(c) for c in counts)))
        try:
            offsets = layout.offsets(PTR, **shape)
        except (LayoutOverflowError, VMCtxEmuError):
            continue
        for stored in _stored_variants(layout, offsets):
            after = words[q + n : q + n + len(stored)]
            if len(after) == len(stored) and after.tolist() == stored:
                return shape, (f"VMComponentOffsets stored at ctx-{address - (start + 4 * q)} "
                               f"({n} counts, {len(stored)} offsets, all reproduced)")
    return None, (f"no copy of VMComponentOffsets in the {address - start} bytes before it "
                  f"whose offsets our {layout.name} calculator reproduces")


def _candidates(src, writable, progress):
    """Every 16-byte-aligned magic in writable memory, mapping by mapping, chunk by chunk."""
    total = sum(m.size for m in writable) or 1
    done = 0
    for m in writable:
        try:
            for at, chunk in src.iter_chunks(m):
                words = np.frombuffer(chunk[: len(chunk) // 16 * 16], "<u4")[::4]
                for i in np.flatnonzero(words == VMCOMPONENT_MAGIC).tolist():
                    if (at + 16 * i) % 16 == 0:
                        yield at + 16 * i
                if progress:
                    progress(done + (at + len(chunk) - m.start), total)
        except UnreadableMemoryError as e:
            yield e
        done += m.size


def _role_of(decoded):
    """Record offset -> (column role, sub-field kind) for every pointer record."""
    recs = decoded.records
    out = {}
    for col, offset, value in zip(recs["column"].tolist(), recs["offset"].tolist(), recs["value"].tolist()):
        column = decoded.columns[col]
        if column.kind == "ptr":
            out[offset] = (column.role, value)
    return out


class _Namer:
    """What a pointer found in the target points at, in the words of gdb's `info symbol`."""

    def __init__(self, src, memory, contexts, func_ref_type):
        self.src, self.memory, self.contexts, self.func_ref_type = src, memory, contexts, func_ref_type

    def where(self, value):
        m = self.memory.find(value)
        if m is None:
            return "not mapped"
        if value in self.contexts:
            return f"component context at {value:#x}"
        if m.path:
            return f"{os.path.basename(m.path)} + {value - m.start + m.offset:#x} ({m.perms})"
        if m.executable:
            return "JIT code"
        return f"anonymous {m.perms} memory"

    def name(self, value, role, own):
        if value in (0, own) or role in ("flags", "magic"):
            return None
        if role == "memory":
            return self._memory(value)
        if role == "func_ref":
            return self._func_ref(value)
        return self.where(value)

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
                what = "null" if not word else self.where(word) if sub.role in CODE_ROLES + ("vmctx",) else ""
                parts.append(f"{sub.name} {word:#x}" + (f" ({what})" if what else ""))
            else:
                parts.append(f"{sub.name} {int.from_bytes(data[at : at + 4], ORDER)}")
        return "VMFuncRef: " + ", ".join(parts)


def scan(source=None, *, wasmtime=None, progress=None):
    """Every component context in `source` (None: this process; a pid; a core file path), decoded.

    `wasmtime` overrides the release read from the target. `progress(done,
    total)` is called as writable memory is read.
    """
    with open_source(source) as src:
        return _scan(src, wasmtime, progress)


def _scan(src, wasmtime, progress):
    mappings = src.mappings()
    memory = _Map(mappings)
    images = _image_mappings(mappings)
    notes = [f"{start:#x}..{end:#x}: {why}" for start, end, why in src.missing()]
    if not images:
        raise ScanError(f"no Wasmtime library is mapped in {src.description}")
    found, found_from = _find_version(src, images)
    if wasmtime is not None:
        version, version_from = str(wasmtime), "given with --wasmtime"
        if found and found != version:
            notes.append(f"the mapped Wasmtime says {found}; decoding as {version} as asked")
    elif found:
        version, version_from = found, found_from
    else:
        raise ScanError(f"no Wasmtime version string in the Wasmtime image mapped in {src.description} "
                        f"({images[0].path}); give the release with --wasmtime")
    try:
        layout = wasmtime_layout(version)
    except UnknownReleaseError as e:
        raise ScanError(f"{src.description} runs Wasmtime {version} ({version_from}): {e}") from e

    writable = [m for m in mappings if m.readable and m.writable]
    empty = layout.offsets(PTR)
    header_end = max(r.end for r in empty.regions()
                     if r.name in {f.name for f in layout.declared_fields() if f.header_name()})
    contexts = []
    for hit in _candidates(src, writable, progress):
        if isinstance(hit, UnreadableMemoryError):
            notes.append(str(hit))
            continue
        try:
            head = src.read(hit, header_end)
        except UnreadableMemoryError:
            continue
        if _header_fits(head, layout, empty, images, memory):
            contexts.append(LiveContext(hit, version, layout))

    addresses = {c.address for c in contexts}
    func_ref_type = next((f.elem_type for f in layout.declared_fields() if f.elem_type.role_sub("array_call")
                          or f.elem_type.role_sub("func_ptr")), None)
    namer = _Namer(src, memory, addresses, func_ref_type)
    copies = []
    for ctx in contexts:
        counts, how = _stored_shape(src, layout, ctx.address)
        if counts is None:
            ctx.notes.append(f"shape not recovered: {how}; not decoded (give the counts to `decode` a dump of it)")
            continue
        ctx.counts, ctx.shape_from = counts, how
        size = layout.offsets(PTR, **counts).size_of_vmctx()
        try:
            data = src.read(ctx.address, size)
        except UnreadableMemoryError as e:
            ctx.notes.append(f"the {size} bytes of the context cannot be read: {e}")
            continue
        dumped = DumpedContext(data, layout.component(**counts), PTR, ORDER, address=ctx.address,
                               debug_assertions=False, wasmtime=version,
                               source=f"{src.description} at {ctx.address:#x}")
        ctx.decoded = decode(dumped)
        if not _is_live(src, ctx):
            copies.append(ctx)
            continue
        for offset, (role, value) in _role_of(ctx.decoded).items():
            text = namer.name(value, role, ctx.address)
            if text:
                ctx.points_to[offset] = text
    if copies:
        notes.append(f"{len(copies)} cop{'ies' if len(copies) > 1 else 'y'} of a context left out: its vmctx "
                     "fields name another address, or nothing confirms it is where the runtime put it")
        contexts = [c for c in contexts if not any(c is k for k in copies)]
    return ScanResult(src.description, version, version_from, contexts, notes)


def _is_live(src, ctx):
    """A context, not a copy of one: every set vmctx field is its address, or (with none set) the
    `ComponentInstance` around it keeps its address just before it."""
    codes = ctx.decoded.records["interp"]
    if (codes == Interp.OTHER_VMCTX).any():
        return False
    if (codes == Interp.OWN_VMCTX).any():
        return True
    try:
        return _u64(src.read(ctx.address + SELF_POINTER_AT, PTR), 0) == ctx.address
    except UnreadableMemoryError:
        return False
