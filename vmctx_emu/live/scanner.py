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
from .symbols import ElfSymbols, name_address
from ..errors import SymbolFileError

__all__ = ["ScanError", "LiveContext", "ScanResult", "scan", "STORED_WINDOW"]

PTR = 8
ORDER = "little"
# How far before a context the stored `VMComponentOffsets` copy is looked for.
STORED_WINDOW = 512
# Counts above this are not a component's (a stored copy is u32 counts of real arrays).
PLAUSIBLE_COUNT = 1 << 24
# Header pointers into Wasmtime's own image (static tables); the rest point into writable memory.
IMAGE_HEADERS = ("builtins", "libcalls", "transcode_libcalls")
# When the stored copy is not reproduced, `infer` tries the sizes a copy seems to end with: a
# non-decreasing run of at least STORED_DISTINCT values from at most STORED_FIRST_MAX (the first
# stored offset is magic's 0 or, v49+, the flags' offset). At most INFER_SIZES_TRIED sizes are
# tried and INFER_LISTED shapes listed in a note.
STORED_DISTINCT = 3
STORED_FIRST_MAX = 64
INFER_SIZES_TRIED = 3
INFER_LISTED = 3
# Missing ranges listed one per note; more are summarized in one.
MISSING_LISTED = 8
# Overlap between chunks when looking for the version string, so no string is cut in two.
VERSION_OVERLAP = 64
# Where `ComponentInstance` keeps the context's own address, relative to the context, from each
# release on (measured live in the wheels 33.0.0-51.0.0; unknown before 33, whose runtime has no C API).
SELF_POINTER_AT = ((33, -72), (34, -128), (35, -16))


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

    def pointers(self, values, role):
        """Which of `values` a set pointer of `role` may hold: code is executable, the rest (memory
        definitions, func refs, tables, host data: runtime structures) writable."""
        if not hasattr(self, "_ends"):
            self._starts = np.array(self.starts, np.uint64)
            self._ends = np.array([m.end for m in self.mappings], np.uint64)
            self._exec = np.array([m.executable for m in self.mappings], bool)
            self._write = np.array([m.writable for m in self.mappings], bool)
        i = np.searchsorted(self._starts, values, side="right") - 1
        inside = (i >= 0) & (values < self._ends[np.maximum(i, 0)])
        kind = self._exec if role in CODE_ROLES else self._write
        return inside & kind[np.maximum(i, 0)]

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


def _header_holes(layout, offsets, end):
    """The padding between the header's fields (after the magic, say): zero in every context."""
    covered = sorted((r.offset, r.end) for r in offsets.regions() if r.end <= end and r.size)
    holes, at = [], 0
    for start, stop in covered:
        if start > at:
            holes.append((at, start))
        at = max(at, stop)
    return holes


def _header_fits(data, layout, offsets, image, memory, holes=()):
    """Zero padding, and every header pointer where the release's runtime points it: the static
    tables into the Wasmtime image's data (not its code), the rest into writable memory."""
    if any(any(data[a:b]) for a, b in holes):
        return False
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
                if not any(i.start <= value < i.end and not i.executable for i in image):
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


def _stored_sizes(words, smallest):
    """Sizes a stored `VMComponentOffsets` copy may end with, nearest the context first.

    Read without trusting our layout: a copy's offsets run non-decreasing
    from a small first one (magic's 0, or the flags' offset) through several
    distinct values to the size, a multiple of the pointer size; the word
    after it is no offset (smaller, or a pointer).
    """
    words = words.tolist()
    out = []
    for i in range(len(words) - 2, 0, -1):
        size = words[i]
        if (size in out or not smallest <= size < PLAUSIBLE_COUNT or size % PTR
                or size <= words[i + 1] < PLAUSIBLE_COUNT):
            continue
        j = i
        while j > 0 and words[j - 1] <= words[j]:
            j -= 1
        if words[j] <= STORED_FIRST_MAX and len(set(words[j : i + 1])) >= STORED_DISTINCT:
            out.append(size)
    return out


def _inferred_shape(src, layout, ctx, memory, why):
    """(counts, how) from `infer` over the size a stored copy ends with, else (None, why).

    Several shapes may fit those bytes: the most plausible is decoded and
    `how` says it was inferred and names the next ones.
    """
    from ..dumps.infer import InferError, infer

    lost = f"shape not recovered: {why}"
    start = max(0, ctx.address - STORED_WINDOW)
    try:
        before = src.read(start, ctx.address - start)
    except UnreadableMemoryError as e:
        return None, f"{lost}; no size to infer it from ({e})"
    room = memory.find(ctx.address).end - ctx.address
    sizes = [size for size in _stored_sizes(np.frombuffer(before[: len(before) // 4 * 4], "<u4"),
                                            layout.offsets(PTR).size_of_vmctx()) if size <= room]
    tried = []
    for size in sizes[:INFER_SIZES_TRIED]:
        try:
            found = infer(src.read(ctx.address, size), PTR, ORDER, wasmtime=layout, address=ctx.address,
                          debug_assertions=False, limit=INFER_LISTED, pointers=memory.pointers)
        except (UnreadableMemoryError, InferError) as e:
            tried.append(f"{size} bytes: {e}")
            continue
        if found.count:
            best = dict(found.candidates[0].counts)
            how = f"inferred ({why}): the only {layout.name} shape of the {size} bytes its stored copy ends with"
            if found.count > 1:
                others = "; ".join(", ".join(f"{k}={v}" for k, v in c.counts if v) or "all counts 0"
                                   for c in found.candidates[1:])
                how = (f"inferred ({why}): the most plausible of {found.count} {layout.name} shapes of the "
                       f"{size} bytes its stored copy ends with; next: {others}")
            return best, how
        tried.append(f"no {layout.name} shape is {size} bytes")
    if not sizes:
        return None, f"{lost}; no stored size to infer it from: not decoded"
    return None, f"{lost}; infer: {', '.join(tried)}: not decoded"


def _candidates(src, writable, progress, head_size, padded):
    """Every 16-byte-aligned magic in writable memory (`padded`: followed by 4 zero bytes), with its
    first `head_size` bytes when the chunk holds them, mapping by mapping, chunk by chunk."""
    total = sum(m.size for m in writable) or 1
    done = 0
    for m in writable:
        try:
            for at, chunk in src.iter_chunks(m):
                whole = chunk[: len(chunk) // 16 * 16]
                if padded:  # one 8-byte compare per 16 bytes: the magic and its zero padding
                    hits = np.frombuffer(whole, "<u8")[::2] == VMCOMPONENT_MAGIC
                else:
                    hits = np.frombuffer(whole, "<u4")[::4] == VMCOMPONENT_MAGIC
                for i in np.flatnonzero(hits).tolist():
                    start = 16 * i
                    head = chunk[start : start + head_size] if start + head_size <= len(chunk) else None
                    yield at + start, head
                if progress:
                    progress(done + (at + len(chunk) - m.start), total)
        except UnreadableMemoryError as e:
            yield e, None
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
        self._files = {}  # path -> (its mappings, its ElfSymbols) or None: not the file the target mapped

    def where(self, value):
        m = self.memory.find(value)
        if m is None:
            return "not mapped"
        if value in self.contexts:
            return f"component context at {value:#x}"
        if m.path:
            named = self._symbol(value, m.path)
            return named or f"{os.path.basename(m.path)} + {value - m.start + m.offset:#x} ({m.perms})"
        if m.executable:
            return "JIT code"
        return f"anonymous {m.perms} memory"

    def _symbol(self, value, path):
        """`info symbol` text from the file at `path`, when it is the very file the target mapped."""
        if path not in self._files:
            self._files[path] = self._same_file(path)
        known = self._files[path]
        return known and name_address(value, known[0], symbols=known[1])

    def _same_file(self, path):
        """(mappings, symbols) when this machine's `path` begins with the bytes the target mapped from it.

        A core may come from another machine or an older build: its first page
        (ELF and program headers, build-id note) must match the file's, or the
        names would be another build's. A target that kept no first page is
        trusted only when it is a live process (its path is what it mapped).
        """
        maps = [m for m in self.memory.mappings if m.path == path]
        try:
            elf = ElfSymbols.open(path)
        except SymbolFileError:
            return None
        if elf is None:
            return None
        head = next((m for m in maps if m.offset == 0), None)
        size = 0 if head is None else min(4096, head.end - head.start)
        theirs = self._read(head.start, size) if size else None
        if theirs is None:
            return (maps, elf) if self.src.pid is not None else None
        try:
            with open(path, "rb") as f:
                ours = f.read(size)
        except OSError:
            return None
        return (maps, elf) if ours == theirs else None

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


def _missing_notes(src):
    """Why the source is damaged, then what is missing: each range, or a summary when there are many."""
    missing = src.missing()
    if len(missing) <= MISSING_LISTED:
        return src.damage() + [f"{start:#x}..{end:#x}: {why}" for start, end, why in missing]
    lost = sum(end - start for start, end, _ in missing)
    whys = "; ".join(dict.fromkeys(why for _, _, why in missing))
    return src.damage() + [f"{len(missing)} address ranges ({lost >> 20} MiB) are missing from "
                           f"{missing[0][0]:#x} to {missing[-1][1]:#x}: {whys}"]


def _scan(src, wasmtime, progress):
    if wasmtime is not None:
        try:
            wasmtime_layout(wasmtime)
        except UnknownReleaseError as e:
            raise ScanError(f"{src.description}: --wasmtime {wasmtime}: {e}") from e
    mappings = src.mappings()
    memory = _Map(mappings)
    images = _image_mappings(mappings)
    notes = _missing_notes(src)
    if not images:
        damage = src.damage()
        raise ScanError(f"no Wasmtime library is mapped in {src.description}"
                        + (f" ({'; '.join(damage)})" if damage else ""))
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
    holes = _header_holes(layout, empty, header_end)
    contexts = []
    # The u32 after the magic is padding (at every pointer size 8): candidates are screened for it in bulk.
    magic_end = empty.regions()[0].end
    padded = any(a <= magic_end and b >= magic_end + 4 for a, b in holes)
    for hit, head in _candidates(src, writable, progress, header_end, padded):
        if isinstance(hit, UnreadableMemoryError):
            notes.append(str(hit))
            continue
        if head is None:
            try:
                head = src.read(hit, header_end)
            except UnreadableMemoryError:
                continue
        if _header_fits(head, layout, empty, images, memory, holes):
            contexts.append(LiveContext(hit, version, layout))

    addresses = {c.address for c in contexts}
    func_ref_type = next((f.elem_type for f in layout.declared_fields() if f.elem_type.role_sub("array_call")
                          or f.elem_type.role_sub("func_ptr")), None)
    namer = _Namer(src, memory, addresses, func_ref_type)
    copies = []
    # Where the ComponentInstance keeps the context's address is the running runtime's fact.
    self_at = _self_pointer_at(found or version)
    for ctx in contexts:
        own = _self_pointer_holds(src, ctx.address, self_at)
        if own is False:
            copies.append(ctx)
            continue
        counts, how = _stored_shape(src, layout, ctx.address)
        if counts is None:
            counts, how = _inferred_shape(src, layout, ctx, memory, how)
        if counts is None:
            ctx.notes.append(how)
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
        codes = ctx.decoded.records["interp"]
        if (codes == Interp.OTHER_VMCTX).any():
            copies.append(ctx)
            continue
        if own is None and not (codes == Interp.OWN_VMCTX).any():
            ctx.notes.append(f"no vmctx field is set and where Wasmtime {found or version} keeps the context's "
                             "own address is not known: this may be a copy of a context, not one")
        for offset, (role, value) in _role_of(ctx.decoded).items():
            text = namer.name(value, role, ctx.address)
            if text:
                ctx.points_to[offset] = text
    if copies:
        notes.append(f"{len(copies)} cop{'ies' if len(copies) > 1 else 'y'} of a context left out: the "
                     "ComponentInstance around it does not hold its address, or its vmctx fields name another")
        contexts = [c for c in contexts if not any(c is k for k in copies)]
    return ScanResult(src.description, version, version_from, contexts, notes)


def _self_pointer_at(version):
    """Where this release's `ComponentInstance` keeps the context's address, or None when not known."""
    major = int(str(version).split(".")[0]) if str(version).split(".")[0].isdigit() else 0
    known = [at for first, at in SELF_POINTER_AT if major >= first]
    return known[-1] if known else None


def _self_pointer_holds(src, address, at):
    """Whether the word where the runtime keeps a context's own address holds `address` (None: unknown)."""
    if at is None:
        return None
    try:
        return _u64(src.read(address + at, PTR), 0) == address
    except UnreadableMemoryError:
        return False
