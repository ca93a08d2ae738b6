"""Find, identify, judge and decode every component context in a real Wasmtime: this process, a pid, a core.

Nothing here writes to the target. One pass over its writable memory finds
every 16-byte-aligned `VMCOMPONENT_MAGIC` followed by zero padding and, at
the same time, walks glibc's heaps (`heap`). A candidate's header points
into its Wasmtime image's read-only data (the builtins table): candidates
are grouped by that image, whatever its file name, and each group's release
is the version literal in the image's trusted bytes (`images`), the one
given with `--wasmtime`, or, when neither is known, the layouts whose
calculator reproduces the stored offsets copies (`stored`). A candidate is
a context when its header lands where that release's runtime points it;
its shape is the stored copy (intact, or its overwritten counts solved from
its offsets); whether it is live, freed or unknown is `liveness.judge` of
the allocator's record, the copy, the self pointer and the store context.
"""

import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from ..checks import check_int
from ..constants import VMCOMPONENT_MAGIC
from ..dumps.decode import Anomaly, decode_many
from ..dumps.dump import DumpedContext
from ..errors import UnknownReleaseError, VMCtxEmuError
from .._native import ffi, lib
from ..layouts.ptr import invalid_ptr
from ..layouts.releases import Resolution, resolve_release
from .heap import Heaps
from .images import Images
from .liveness import FREED, LIVE, UNKNOWN, judge
from .loaded import file_mappings
from .namer import AddressMap, PointerNamer
from .where import locate
from .capture import read_capture
from .store_context import store_context_of, store_context_pointer
from ..errors import UnreadableMemoryError
from .source import MemorySource
from .target import open_source
from .shape import MAX_CONTEXT_BYTES, STORED_WINDOW, context_size, find_copy, offsets_for, per_shape, inferred_shape, layout_family, self_pointer_at

__all__ = ["ScanError", "LiveContext", "ScanResult", "scan", "STORED_WINDOW"]

PTR = 8
ORDER = "little"
INVALID = np.uint64(invalid_ptr(PTR))  # what debug builds poison unset pointers with
# Header pointers into Wasmtime's own image (static tables); the rest point into writable memory.
IMAGE_HEADERS = ("builtins", "libcalls", "transcode_libcalls")
# The header bytes read with each candidate: every layout's header fields end by then (v1-v29: `limits` at 32;
# test_live_shapes checks it against every layout).
HEAD = 40
# The words after the magic that may point into the image: +8 (builtins, libcalls, transcode_libcalls) or,
# for the seed and v0.40, the store's vtable at +16.
IMAGE_WORDS = (8, 16)
# Candidates whose stored copies decide a layout family when no version can be read.
FAMILY_SAMPLE = 16
# The bytes read after a candidate with the STORED_WINDOW before it, in one read: most contexts end by then.
AROUND_AFTER = 2048
# Contexts of one shape decoded together (`decode_many`) when a scan's result is streamed.
DECODE_BATCH = 256
# The magic then its zero padding, as the little-endian u64 the C search compares in the host's order.
MAGIC_WORD = int.from_bytes(VMCOMPONENT_MAGIC.to_bytes(8, ORDER), sys.byteorder)
# Magic words found per call of the C search, before Python takes them.
FIND_BATCH = 4096
# Distinct shapes (layout, release, counts) a scan reads and decodes; contexts of further shapes are listed with
# their shape and a note. Each shape costs its own offsets, decode plan and names (~4 ms): a process holds one
# shape per component it instantiated (a few, tens in a large embedder), while planted copies of one context
# in thousands of shapes would cost a minute.
MAX_SHAPES = 128
# Missing ranges listed one per note; more are summarized in one.
MISSING_LISTED = 8


class ScanError(VMCtxEmuError):
    """A scan that cannot start: no Wasmtime in the target, or an unsupported release."""


@dataclass
class LiveContext:
    """One context found: where, which release and shape (and how it was recovered), live or not, decoded.

    `data` holds its bytes as read (None: its shape or bytes are unknown, so it
    is not decoded); `decoded` is their decode when the scan was asked to
    decode (else `decode()` makes one); `points_to` names its pointers, and
    `pointees` says the same as fields (JSON's `points_to`).
    """

    address: int
    wasmtime: str
    layout: object
    counts: dict = None
    shape_from: str = None
    decoded: object = None
    points_to: dict = field(default_factory=dict)  # offset -> what its pointer points at, in words
    pointees: dict = field(default_factory=dict, repr=False)  # offset -> the same as fields (`namer.pointee`)
    notes: list = field(default_factory=list)
    liveness: object = None
    image: str = None
    data: bytes = field(default=None, repr=False)
    release: str = field(default=None, repr=False)  # the release its bytes are decoded as
    guessed: str = field(default=None, repr=False)  # why its shape is a guess (the `guessed_shape` anomaly)
    source: str = field(default=None, repr=False)
    # The `DecodedStoreContext` its header points at, read during the scan; `store_note` says why there is none.
    store_context: object = field(default=None, repr=False)
    store_note: str = field(default=None, repr=False)

    @property
    def state(self):
        return self.liveness.state if self.liveness is not None else UNKNOWN

    def __repr__(self):  # the address in hex, and what it is; not every decoded field and pointer name
        return (f"LiveContext(address={self.address:#x}, wasmtime={self.wasmtime!r}, layout={self.layout.id!r}, "
                f"state={self.state!r}, counts={self.counts!r}, image={self.image!r})")

    def decode(self):
        """A new `Decoded` of `data` (None without it): nothing is kept, so a caller streaming thousands of
        contexts holds one decode at a time."""
        return None if self.data is None else _decode_all([self])[0]

    def dumped(self):
        """Its bytes as a `DumpedContext` (its address, release and shape; a release build), what a capture
        writes as its dump pair; None without bytes."""
        return None if self.data is None else self._dumped()

    def _dumped(self):
        """Its bytes as a `DumpedContext`, from one made once per shape and release."""
        proto = per_shape(_prototype, self.layout, self.counts, self.release)
        return proto.with_bytes(self.data, address=self.address, source=f"{self.source} at {self.address:#x}")


def _prototype(layout, counts, release):
    return DumpedContext(bytes(offsets_for(layout, counts).size_of_vmctx()), layout.component(**counts), PTR, ORDER,
                         debug_assertions=False, wasmtime=release)


def _decode_all(contexts):
    """The decodes of `contexts` (each with `data`), those of one shape decoded together."""
    decoded = decode_many([c._dumped() for c in contexts])
    for ctx, d in zip(contexts, decoded):
        if ctx.guessed:
            d.anomalies.insert(0, Anomaly("guessed_shape", 0, ctx.guessed))
    return decoded


def _batches(contexts, most=DECODE_BATCH):
    """Runs of consecutive contexts of one shape and release, at most `most` long; undecodable ones alone."""
    run, key = [], None
    for ctx in contexts:
        k = None if ctx.data is None else (id(ctx.layout), ctx.release, tuple(sorted(ctx.counts.items())))
        if run and (k is None or k != key or len(run) >= most):
            yield run
            run = []
        run.append(ctx)
        key = k
        if k is None:
            yield run
            run = []
    if run:
        yield run


@dataclass
class ScanResult:
    """`contexts` are those shown: live and unknown, and freed ones when asked; `freed` counts every freed one."""

    source: str
    wasmtime: str
    wasmtime_from: str
    contexts: list
    notes: list
    freed: int = 0
    live: bool = False
    located: list = None  # a `where.Location` per address asked about (`scan(where=...)`)
    capture: object = None  # a `capture.Capture` (`scan(capture=True)`): what its contexts point at

    def decoded_contexts(self):
        """The contexts in order, each with `decoded` set when it has bytes: the scan's own objects when it
        decoded them, else copies decoded a batch at a time and not kept (peak memory stays one batch's)."""
        for run in _batches(self.contexts):
            if run[0].decoded is not None or run[0].data is None:
                yield from run
                continue
            for ctx, decoded in zip(run, _decode_all(run)):
                yield replace(ctx, decoded=decoded)


def scan(source=None, *, wasmtime=None, progress=None, include_freed=False, exe=None, sysroot=None, decode=True,
         where=(), capture=False, focus=None):
    """Every component context in `source` (None: this process; a pid; a core file path; an open
    `MemorySource`, which is left open), judged and decoded (`decode` False: judged, its bytes and
    pointer names kept, each decoded as `ScanResult.decoded_contexts` streams them).

    `wasmtime` overrides the release read from the target; `include_freed`
    also decodes the contexts found freed (they are counted either way);
    `exe` and `sysroot` supply files a core does not name (as gdb's `file`
    and `set sysroot`), each checked against the core's bytes.
    `progress(done, total)` is called as writable memory is read. `where`:
    addresses to locate among the contexts listed (`ScanResult.located`, a
    `where.Location` each), while the target's files are still open.
    `capture`: also read what each context's pointers reach
    (`ScanResult.capture`, a `capture.Capture`; `vmctx_emu.capture.save_capture`
    writes it) while the target is open. `focus`: the address of a context to read and decode even when
    the scan's other contexts reach MAX_SHAPES distinct shapes (what `scan --context ADDR` asks for).
    """
    where = tuple(check_int("where address", a, 0, 1 << 64, hex_value=True) for a in where)
    if isinstance(source, MemorySource):
        return _run(source, wasmtime, progress, include_freed, exe, sysroot, decode, where, capture, focus)
    with open_source(source) as src:
        return _run(src, wasmtime, progress, include_freed, exe, sysroot, decode, where, capture, focus)


def _run(src, wasmtime, progress, include_freed, exe, sysroot, decode, where, capture, focus=None):
    result = _Scan(src, wasmtime, progress, include_freed, exe, sysroot, decode, where, focus).run()
    if capture:
        result.capture = read_capture(result, src)
    return result


def _u64(data, at):
    return int.from_bytes(data[at : at + PTR], ORDER)


def _missing_notes(src):
    """Why the source is damaged, then what is missing: each range, or a summary when there are many."""
    missing = src.missing()
    if len(missing) <= MISSING_LISTED:
        return src.damage() + [f"{start:#x}..{end:#x}: {why}" for start, end, why in missing]
    lost = sum(end - start for start, end, _ in missing)
    whys = "; ".join(dict.fromkeys(why for _, _, why in missing))
    return src.damage() + [f"{len(missing)} address ranges ({lost >> 20} MiB) are missing from "
                           f"{missing[0][0]:#x} to {missing[-1][1]:#x}: {whys}"]


@dataclass
class _Group:
    """Candidates whose header points into one image, and the release they are decoded as."""

    image: object
    hits: list
    resolution: Resolution = None
    version_from: str = None
    found: int = 0  # contexts taken from it
    where: str = None  # the image, described


class _Scan:
    def __init__(self, src, wasmtime, progress, include_freed, exe, sysroot, decode=True, where=(), focus=None):
        self.src, self.progress, self.include_freed, self.decode = src, progress, include_freed, decode
        self.where, self.focus = where, focus
        self.given = None
        if wasmtime is not None:
            try:
                self.given = resolve_release(wasmtime)
            except UnknownReleaseError as e:
                raise ScanError(f"{src.description}: --wasmtime {wasmtime}: {e}") from e
        self.exe, self.sysroot = exe, sysroot
        self.notes = []
        self.stores = {}  # store context address -> what _store found
        self.shapes = set()  # (layout id, release, counts) of the contexts read, at most MAX_SHAPES
        self.over_shapes = 0  # contexts not read for being of a shape beyond them

    def run(self):
        src = self.src
        loaded = file_mappings(src, exe=self.exe, sysroot=self.sysroot)
        mappings = loaded.mappings
        self.memory = AddressMap(mappings, guest_code=bool(src.emulated))
        self.images = Images(src, mappings, loaded.local, loaded.verified)
        self.heaps = Heaps(src)
        self.notes = _missing_notes(src) + loaded.notes
        hits = self._candidates([m for m in mappings if m.readable and m.writable])
        self.heaps.finish()
        groups = self._groups(hits)
        if not groups:
            return self._without_contexts(hits)
        contexts, copies, freed, unbacked = [], 0, 0, 0
        for group in groups:
            for ctx in self._contexts(group):
                if ctx is None:
                    copies += group.image is not None
                    unbacked += group.image is None
                    continue
                group.found += 1
                if ctx.state == FREED:
                    freed += 1
                    if self.include_freed:
                        contexts.append(ctx)
                else:
                    contexts.append(ctx)
        groups = [g for g in groups if g.image is not None or g.found]
        if not groups:
            return self._without_contexts(hits)
        for group in groups:
            if group.image is None:
                self.notes.append(f"{group.found} context{'s' * (group.found != 1)} whose header points into "
                                  f"memory {src.description} does not describe (no mapping holds their builtins): "
                                  f"decoded as {self.given.version} as asked, each backed by a stored copy our "
                                  f"calculator reproduces ({unbacked} other candidates without one left out)")
        self._name_pointers(contexts)
        self._read_store_contexts(contexts)
        if self.decode:
            for run in _batches(contexts):
                if run[0].data is not None:
                    for ctx, decoded in zip(run, _decode_all(run)):
                        ctx.decoded = decoded
        self.notes += self.images.notes
        if freed:
            shown = "listed below, each marked" if self.include_freed else "not listed (--all lists them)"
            self.notes.append(f"{freed} freed context{'s' * (freed != 1)} found: {shown}")
        if self.over_shapes:
            self.notes.append(f"{self.over_shapes} context{'s' * (self.over_shapes != 1)} of shapes beyond the first "
                              f"{MAX_SHAPES} distinct ones listed but not read or decoded (--context ADDR decodes one)")
        if copies:
            self.notes.append(f"{copies} cop{'ies' if copies > 1 else 'y'} of a context left out: the "
                              "ComponentInstance around it does not hold its address, or its vmctx fields name another")
        version, version_from = self._summary(groups)
        return ScanResult(src.description, version, version_from, contexts, self.notes, freed, src.live,
                          self._locate(contexts))

    def _locate(self, contexts):
        if not self.where:
            return None
        namer = PointerNamer(self.src, self.memory, self.images, {c.address for c in contexts}, None)
        return locate(self.where, contexts, self.memory, namer.where,
                      lambda c: _words(c.layout, c.counts).pointers(c.data),
                      lambda c: offsets_for(c.layout, c.counts).size_of_vmctx())

    # ------------------------------------------------------------ candidates

    def _candidates(self, writable):
        """Every 16-aligned magic followed by 4 zero bytes in writable memory, with its first HEAD bytes; the
        heaps are walked over the same blocks."""
        total = sum(m.size for m in writable) or 1
        done = 0
        hits = []
        found = np.empty(FIND_BATCH, np.uint64)
        out = ffi.from_buffer("uint64_t[]", found)
        for m in writable:
            if not self.src.holds_bytes(m):
                done += m.size
                continue
            walk = self.heaps.walker(m)
            try:
                for at, chunk in self.src.iter_chunks(m):
                    walk.feed(at, chunk)
                    buf, start = ffi.from_buffer("uint8_t[]", chunk), 0
                    while True:
                        n = lib.vmctx_find_aligned_word(buf, len(chunk), start, MAGIC_WORD, out, FIND_BATCH)
                        for start in found[:n].tolist():
                            head = chunk[start : start + HEAD] if start + HEAD <= len(chunk) else None
                            hits.append((at + start, head))
                        if n < FIND_BATCH:
                            break
                        start += 1
                    if self.progress:
                        self.progress(done + (at + len(chunk) - m.start), total)
            except UnreadableMemoryError as e:
                self.notes.append(str(e))
            done += m.size
        out = []
        for address, head in hits:
            if head is None:
                try:
                    head = self.src.read(address, HEAD)
                except UnreadableMemoryError:
                    continue
            out.append((address, head))
        return out

    def _image_of(self, head):
        """The image a candidate's header points into (read-only, not writable), or None."""
        for at in IMAGE_WORDS:
            m = self.memory.find(_u64(head, at))
            if m is not None and m.readable and not m.writable:
                return self.images.image_of(m)
        return None

    def _groups(self, hits):
        by_image = {}
        for address, head in hits:
            image = self._image_of(head)
            if image is not None:
                by_image.setdefault(id(image), _Group(image, [])).hits.append((address, head))
            elif self.given is not None and any(self.memory.find(_u64(head, at)) is None for at in IMAGE_WORDS):
                # The header points where the target describes no memory (a core that left the image out):
                # with the release given, such candidates are judged by their stored copies alone.
                by_image.setdefault(None, _Group(None, [])).hits.append((address, head))
        groups = []
        for group in sorted(by_image.values(), key=lambda g: g.image.start if g.image else -1):
            if self._release(group):
                groups.append(group)
        return groups

    def _without_contexts(self, hits):
        """No context: the Wasmtime images found by their code, in a result that lists none; ScanError when
        nothing says this is Wasmtime (no image, no --wasmtime, an intact target)."""
        src = self.src
        why = (f"{len(hits)} `comp` magic{'s' * (len(hits) != 1)} in writable memory, none with a header pointing "
               "into a mapped image" if hits else "no component context magic in its writable memory")
        found = self.images.wasmtime_images()
        damaged = bool(src.damage() or src.missing())
        if not found and self.given is None and not damaged:
            raise ScanError(f"no Wasmtime in {src.description}: {why}, and no mapped file holds Wasmtime's code")
        versions = {}
        for image in found:
            version, where = self.images.version(image)
            versions.setdefault(version, []).append(where)
        if self.given is not None:
            version, version_from = self.given.version, "given with --wasmtime"
        elif len(versions) == 1 and None not in versions:
            [(version, wheres)] = versions.items()
            version_from = wheres[0]
            try:
                note = resolve_release(version).note
            except UnknownReleaseError as e:
                note = str(e)
            if note:
                self.notes.append(note)
        else:
            version = None
            version_from = ("unknown: the core is damaged (see the notes)" if not found else
                            "; ".join(w for wheres in versions.values() for w in wheres))
        where = (f"Wasmtime's code is mapped from {', '.join(image.describe() for image in found)}" if found else
                 "no mapped file holds Wasmtime's code" + (" in what the core holds" if damaged else ""))
        self.notes.append(f"no component context: {why}; {where}")
        return ScanResult(src.description, version, version_from, [], self.notes, 0, src.live, self._locate([]))

    # --------------------------------------------------------------- release

    def _release(self, group):
        """Decide the group's release; False (with a note) when it cannot be decoded."""
        image = group.image
        if image is None:
            group.resolution, group.version_from = self.given, "given with --wasmtime"
            return True
        found, where = self.images.version(image)
        if self.given is not None:
            group.resolution = self.given
            group.version_from = "given with --wasmtime"
            if found and found != self.given.version:
                self.notes.append(f"{image.name}: the mapped Wasmtime says {found} ({where}); decoding as "
                                  f"{self.given.version} as asked")
            elif not found:
                self.notes.append(f"{image.name}: no Wasmtime version could be read ({where}); decoding as "
                                  f"{self.given.version} as asked")
        elif found:
            try:
                group.resolution = resolve_release(found)
            except UnknownReleaseError as e:
                self.notes.append(f"{image.name} is Wasmtime {found} ({where}): {e}; give the release with "
                                  f"--wasmtime to decode its {len(group.hits)} candidate contexts")
                return False
            group.version_from = where
        else:
            family = self._family(group)
            if family is None:
                self.notes.append(f"{image.name}: {len(group.hits)} candidate contexts point into it, but its "
                                  f"Wasmtime release is unknown ({where}) and no layout reproduces their stored "
                                  "offsets; give the release with --wasmtime")
                return False
            group.resolution, group.version_from = family
        resolution = group.resolution
        if resolution.note:
            self.notes.append(f"{image.name}: {resolution.note}")
        return True

    def _family(self, group):
        """(Resolution, how) from the layouts whose calculator reproduces the group's stored copies, or None."""
        windows = [(address, window) for address, _ in group.hits[:FAMILY_SAMPLE]
                   if (window := self._window(address)) is not None]
        return layout_family(windows)

    # -------------------------------------------------------------- contexts

    def _window(self, address):
        """(start, bytes) just before `address`, at most STORED_WINDOW, within its mapping; None if unreadable."""
        around = self._around(address, 0)
        return None if around is None else (around[0], around[1][: address - around[0]])

    def _around(self, address, after):
        """(start, bytes) from STORED_WINDOW before `address` (within its mapping) to `after` bytes past it
        (fewer at the mapping's end): everything one context's checks read, in one read; just the bytes before
        it when those after cannot be read; None when those before cannot."""
        m = self.memory.find(address)
        start = max(address - STORED_WINDOW, m.start if m else 0)
        end = min(address + after, m.end) if m else address + after
        try:
            return start, self.src.read(start, end - start)
        except UnreadableMemoryError:
            pass
        try:  # the bytes after it are not all there (a cut core): the window alone, the rest read as asked
            return start, self.src.read(start, address - start)
        except UnreadableMemoryError:
            return None

    def _contexts(self, group):
        group.where = group.image.describe() if group.image else "no mapping the target describes"
        header = _HeaderCheck(group.resolution.layout, group.image, self.memory)
        self_at = self_pointer_at(group.resolution.stands_for)
        for address, head in group.hits:
            if header.fits(head):
                yield self._context(group, address, head, self_at)

    def _context(self, group, address, head, self_at):
        """The LiveContext at `address` (None: a copy of a context, not one)."""
        layout, resolution = group.resolution.layout, group.resolution
        ctx = LiveContext(address, resolution.version, layout, image=group.where)
        around = self._around(address, AROUND_AFTER)
        window = None if around is None else (around[0], around[1][: address - around[0]])
        copy = None if window is None else find_copy(window[1], window[0], layout, address)
        if group.image is None and copy is None:
            return None  # nothing backs a candidate whose header points nowhere: not taken for a context
        counts = copy.counts if copy is not None else None
        size = context_size(layout, counts) if counts is not None else None
        allocation = self.heaps.allocation(address, None if size is None else address + size, near=around)
        own = self._self_pointer(address, self_at, around)
        store = self._store(head, layout)
        ctx.liveness = judge(address, allocation, copy, own, store)
        if own is False and ctx.state != FREED:
            return None
        if ctx.state == FREED and not self.include_freed:
            return ctx
        guessed = None
        if copy is not None:
            ctx.shape_from = copy.describe(address)
        elif resolution.how == "newer":
            ctx.notes.append(f"shape not recovered: no stored VMComponentOffsets copy that {layout.name} "
                             f"reproduces, and Wasmtime {resolution.version} is newer than the table: not decoded")
        elif ctx.state == FREED:
            ctx.notes.append("shape not recovered: no stored VMComponentOffsets copy survives, and a freed "
                             "context's shape is not guessed: not decoded")
        else:
            counts, how, guessed = inferred_shape(self.src, self.memory, layout, address, window)
            if counts is None:
                ctx.notes.append(how)
            else:
                ctx.shape_from = how
        if counts is None:
            return ctx
        ctx.counts = counts
        size = context_size(layout, counts)
        if size > MAX_CONTEXT_BYTES and address != self.focus:
            claimed = ", ".join(f"{name}={n}" for name, n in counts.items() if n)
            ctx.notes.append(f"its shape ({claimed}) claims {size} bytes, more than the {MAX_CONTEXT_BYTES} bytes "
                             "a context is read as in a scan: not read, not decoded (--context ADDR reads this one)")
            return ctx
        shape = (id(layout), resolution.release, tuple(counts.values()))
        if shape not in self.shapes and address != self.focus:
            if len(self.shapes) >= MAX_SHAPES:
                self.over_shapes += 1
                ctx.notes.append(f"not read, not decoded: the scan already decodes {MAX_SHAPES} distinct shapes "
                                 "(each costs its own layout); --context ADDR decodes this one")
                return ctx
            self.shapes.add(shape)
        try:
            held = None if around is None else around[1][address - around[0] : address - around[0] + size]
            data = held if held is not None and len(held) == size else self.src.read(address, size)
        except UnreadableMemoryError as e:
            ctx.notes.append(f"the {size} bytes of the context cannot be read: {e}")
            return ctx
        ctx.data, ctx.release, ctx.guessed, ctx.source = data, resolution.release, guessed, self.src.description
        vmctx = _words(layout, counts).vmctx(data)
        if ((vmctx != 0) & (vmctx != INVALID) & (vmctx != address)).any() and ctx.state != FREED:
            return None
        if own is None and not (vmctx == address).any():
            ctx.notes.append("no vmctx field is set and where this release keeps the context's own address is not "
                             "known: this may be a copy of a context, not one")
        return ctx

    def _self_pointer(self, address, at, around=None):
        """Whether the word where the runtime keeps a context's own address holds `address` (None: unknown)."""
        if at is None:
            return None
        if around is not None and around[0] <= address + at and address + at + PTR <= around[0] + len(around[1]):
            return _u64(around[1], address + at - around[0]) == address
        try:
            return _u64(self.src.read(address + at, PTR), 0) == address
        except UnreadableMemoryError:
            return False

    def _store(self, head, layout):
        """(address, Allocation) of the store context the header names, when it lies in a walked heap."""
        at = _store_at(layout)
        if at is None:
            return None
        value = _u64(head, at)
        if value not in self.stores:  # contexts of one store name the same one
            where = self.heaps.allocation(value)
            self.stores[value] = (value, where) if where.state != "unknown" else None
        return self.stores[value]

    # ---------------------------------------------------------------- naming

    def _name_pointers(self, contexts):
        """Each context's `points_to`: its pointers named (the notes this adds are known before any output)."""
        addresses = {c.address for c in contexts}
        namers = {}
        for ctx in contexts:
            if ctx.data is None:
                continue
            layout = ctx.layout
            key = (layout.id, ctx.release)
            if key not in namers:
                func_ref_type = next((f.elem_type for f in layout.declared_fields()
                                      if f.elem_type.role_sub("array_call") or f.elem_type.role_sub("func_ptr")), None)
                namers[key] = PointerNamer(self.src, self.memory, self.images, addresses, func_ref_type,
                                           self.heaps, release=ctx.release)
            namer = namers[key]
            for role, start, stride, values in _words(layout, ctx.counts).pointers(ctx.data):
                for i, value in enumerate(values):
                    found = namer.describe(value, role, ctx.address)
                    if found:
                        ctx.points_to[start + i * stride] = found["text"]
                        ctx.pointees[start + i * stride] = found

    def _read_store_contexts(self, contexts):
        """Each context's store context, read once per store (its contexts share it) while the target is open."""
        read = {}
        for ctx in contexts:
            found = store_context_pointer(ctx)
            if found is None:
                continue
            name, address = found
            if address not in read:
                try:
                    read[address] = (store_context_of(self.src, ctx), None)
                except (UnreadableMemoryError, VMCtxEmuError) as e:
                    read[address] = (None, f"store context {address:#x} ({name}) not read: {e}")
            ctx.store_context, ctx.store_note = read[address]

    def _summary(self, groups):
        versions = list(dict.fromkeys(g.resolution.version for g in groups))
        if len({(g.resolution.version, g.version_from) for g in groups}) == 1:
            return versions[0], groups[0].version_from
        froms = "; ".join(f"{g.resolution.version} ({g.version_from})" for g in groups)
        return " and ".join(versions), f"{len(groups)} Wasmtime images: {froms}"


class _Words:
    """Where one shape keeps its pointers: (role, start, count, stride) per pointer sub-field, read from a
    context's bytes as strided numpy views (no decode)."""

    def __init__(self, layout, counts):
        offsets = offsets_for(layout, counts)
        self.groups, self.vmctx_groups = [], []
        for f, region in zip(layout.declared_fields(), offsets.regions()):
            for sub in f.elem_type.subfields:
                if sub.kind != "ptr" or not region.count:
                    continue
                group = (sub.role, region.offset + f.sub_offset(sub.name, PTR), region.count, region.elem_size)
                self.groups.append(group)
                if sub.role == "vmctx":
                    self.vmctx_groups.append(group)

    @staticmethod
    def _view(data, start, count, stride):
        return np.ndarray((count,), "<u8", data, start, (stride,))

    def pointers(self, data):
        """(role, start, stride, values as ints) per pointer sub-field."""
        for role, start, count, stride in self.groups:
            yield role, start, stride, self._view(data, start, count, stride).tolist()

    def vmctx(self, data):
        """Every vmctx sub-field's value, as one array."""
        views = [self._view(data, start, count, stride) for _, start, count, stride in self.vmctx_groups]
        return np.concatenate(views) if views else np.zeros(0, np.uint64)


def _words(layout, counts):
    return per_shape(_Words, layout, counts)


@lru_cache(maxsize=64)
def _store_at(layout):
    """Where the header keeps the store context's address (the first header pointer outside the image)."""
    for f in layout.declared_fields():
        name = f.header_name()
        if name is not None and name not in IMAGE_HEADERS:
            return offsets_for(layout).region(f.name).offset
    return None


class _HeaderCheck:
    """Whether a candidate's header is one the release's runtime writes: zero padding, and every header
    pointer where the runtime points it: the static tables into the Wasmtime image's read-only data (not
    its code), the rest into writable memory. With no image (None: the target does not describe it), the
    static tables' pointers must land in no mapping at all. Contexts of one image share most header
    values, so each value is judged once."""

    def __init__(self, layout, image, memory):
        offsets = offsets_for(layout)
        self.pointers = []  # (offset in the header, static)
        for f in layout.declared_fields():
            name = f.header_name()
            if name is None:
                continue
            region = offsets.region(f.name)
            for sub in f.elem_type.subfields:
                self.pointers.append((region.offset + f.sub_offset(sub.name, PTR),
                                      name in IMAGE_HEADERS or sub.name == "vtable"))
        end = max(offsets.region(f.name).end for f in layout.declared_fields() if f.header_name())
        covered = sorted((r.offset, r.end) for r in offsets.regions() if r.end <= end and r.size)
        self.holes, at = [], 0  # the padding between the header's fields (after the magic, say)
        for start, stop in covered:
            if start > at:
                self.holes.append((at, start))
            at = max(at, stop)
        self.readonly = image.readonly() if image is not None else None
        self.memory = memory
        self.judged = {}

    def fits(self, head):
        if any(any(head[a:b]) for a, b in self.holes):
            return False
        for at, static in self.pointers:
            if at + PTR > len(head):
                return False
            key = (_u64(head, at), static)
            ok = self.judged.get(key)
            if ok is None:
                ok = self.judged[key] = self._points_right(*key)
            if not ok:
                return False
        return True

    def _points_right(self, value, static):
        m = self.memory.find(value)
        if self.readonly is None and static:
            return m is None and bool(value) and not value % PTR
        if m is None:
            return False
        if static:
            return any(i.start <= value < i.end and not i.executable for i in self.readonly)
        return m.writable
