"""The files a target maps, which bytes of them this machine may trust, and what Wasmtime release they are.

A scan needs a mapped file twice: for the Wasmtime release (its version
literal) and for symbol names. Both must come from the very bytes the target
mapped. A file on this machine under the same path may be another build (a
core from elsewhere, a library upgraded since): it is used only when the
bytes the target holds of it (the first page of the file, which holds the
ELF and program headers and the build-id note, and the first page of each
code mapping) equal the file's at the same offsets. Without the file's first
page nothing names the build: code pages alone match another build that
differs elsewhere, so such a file is refused and a note says so. A live
process also offers the mapped file itself
(`/proc/PID/map_files`), the same inode even if the path now names another.
A core is never treated as live, whatever pid it records.

Which image is Wasmtime is decided by content, not by file name: a
context's header points into its Wasmtime image's read-only data (the
builtins table), so the image holding those pointers is Wasmtime.
"""

import os
import re
from dataclasses import dataclass, field

from .identify import VersionCounter, best_version
from ..errors import UnreadableMemoryError
from .source import open_regular

__all__ = ["FIRST_PAGE", "NO_FIRST_PAGE", "Image", "Images", "compare_file", "unchanged_mappings"]

COMPARE_BYTES = 4096  # bytes compared at the start of each read-only mapping of a file
FIRST_PAGE = 0  # the file offset of its ELF and program headers and build-id note: what names the build
NO_FIRST_PAGE = f"does not hold its first page (file offset {FIRST_PAGE:#x}: ELF and program headers, build-id note)"
# Wasmtime's own source paths, which its panic locations keep in every build: the workspace's
# crates/wasmtime/src/ (crates/runtime/src/ before v20), or a crates.io build's wasmtime-X.Y.Z/src/.
WASMTIME_SOURCES = re.compile(rb"(?:crates/(?:wasmtime|runtime)|wasmtime(?:-runtime)?-[0-9]+\.[0-9]+\.[0-9]+)/src/")
SOURCES_OVERLAP = 64
FILE_CHUNK = 1 << 20
# Bytes read from a file on disk for a version string the target's memory lacks: the file ranges its
# read-only mappings cover, at most this many in all (a real Wasmtime's text and read-only data are
# tens of MiB; a planted multi-GiB file, or mappings claiming one, must not be read whole).
MAX_FILE_SCAN = 128 << 20
PSEUDO_PREFIX = "["  # [heap], [stack], [vdso], [anon:...]: kernel names, not files
# What comparing a file with the target's bytes of it shows.
SAME, DIFFERS, UNCHECKED, UNREADABLE = "same", "differs", "unchecked", "unreadable"


@dataclass
class Image:
    """One file mapped in the target (or, with no name known, one read-only segment holding image pointers)."""

    path: str | None
    mappings: list = field(default_factory=list)

    @property
    def name(self):
        return os.path.basename(self.path) if self.path else f"the unnamed image at {self.start:#x}"

    @property
    def start(self):
        return min(m.start for m in self.mappings)

    def readonly(self):
        """Its mappings whose bytes the program does not change (the file's own bytes, as loaded)."""
        return [m for m in self.mappings if m.readable and not m.writable]

    def describe(self):
        return f"{self.path} mapped at {self.start:#x}" if self.path else self.name


class Images:
    """The images of a target's mappings, with trust decisions and versions made once each."""

    def __init__(self, src, mappings, locate=None, verified=None):
        self.src = src
        self.locate = locate or (lambda path: path)  # the target's file name -> the file to read here
        self.verified = verified or {}  # the target's file name -> (a file checked otherwise, how)
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self.images = {}
        for m in self.mappings:
            if m.path and not m.path.startswith(PSEUDO_PREFIX):
                self.images.setdefault(m.path, Image(m.path)).mappings.append(m)
        self._unnamed = {}
        self._trust = {}
        self._versions = {}
        self.notes = []  # files supplied for the target (exe, sysroot) that were refused, one line each

    def image_of(self, mapping):
        """The image a mapping belongs to: its file's, or for an unnamed read-only mapping, that mapping alone."""
        if mapping.path and not mapping.path.startswith(PSEUDO_PREFIX):
            return self.images[mapping.path]
        key = mapping.start
        if key not in self._unnamed:
            self._unnamed[key] = Image(None, [mapping])
        return self._unnamed[key]

    # ------------------------------------------------------------------ trust

    def trusted_file(self, image):
        """(a path on this machine holding the target's bytes of `image`, why), or (None, why not)."""
        if image.path is None:
            return None, "no file name is known for it"
        if image.path not in self._trust:
            self._trust[image.path] = self._decide(image)
        return self._trust[image.path]

    def _decide(self, image):
        if image.path in self.verified:
            return self.verified[image.path]
        candidates = []
        if getattr(self.src, "live", False):
            for m in image.mappings:
                candidates.append((f"/proc/{self.src.pid}/map_files/{m.start:x}-{m.end:x}", "the file it maps"))
                break
        path = image.path[: -len(" (deleted)")] if image.path.endswith(" (deleted)") else image.path
        local = self.locate(path)
        candidates.append((local, "this machine's file at its path" if local == path else f"the file given ({local})"))
        why_not = []
        for path, what in candidates:
            verdict, why = self._compare(image, path)
            if verdict == SAME:
                return path, f"{what}, checked against the target's bytes"
            if verdict == UNCHECKED and what == "the file it maps":
                return path, f"{what} (the kernel's link to the mapped inode)"
            why_not.append(f"{what}: {why}")
            given = what.startswith("the file given")
            if verdict != UNREADABLE or given:  # a file is here, and not used: say why, never drop its names silently
                file = f"{what} for {image.path}" if given else f"this machine's file at {image.path}"
                self.notes.append(f"{file} is refused: it {why}")
        return None, "; ".join(why_not)

    def _compare(self, image, path):
        """(SAME, None) when the file's bytes are shown to be the target's; else (verdict, why not)."""
        try:
            with open_regular(path) as f:
                mismatch, compared = compare_file(self.src, f, image.mappings)
        except OSError as e:
            return UNREADABLE, f"cannot be read ({e.strerror or e})"
        if mismatch is not None:
            offset, _ = mismatch
            return DIFFERS, (f"differs from the target's bytes at file offset {offset:#x} (the target mapped another "
                             "build)")
        if FIRST_PAGE in compared:
            return SAME, None
        n = len(compared)
        held = f"; {n} page{'s' * (n != 1)} of its code match{'es' * (n == 1)}, as another build's may" if n else ""
        return UNCHECKED, f"cannot be shown to be the file the target mapped: the target {NO_FIRST_PAGE}{held}"

    # ------------------------------------------------------------- wasmtime

    def wasmtime_images(self):
        """The named images whose read-only bytes hold Wasmtime's own source paths (for a target with no context)."""
        found = []
        for image in self.images.values():
            tail = b""
            try:
                for m in image.readonly():
                    for _, chunk in self.src.iter_chunks(m):
                        if WASMTIME_SOURCES.search(tail + chunk):
                            raise StopIteration
                        tail = chunk[-SOURCES_OVERLAP:]
                    tail = b""
            except StopIteration:
                found.append(image)
            except UnreadableMemoryError:
                continue
        return found

    # ---------------------------------------------------------------- version

    def version(self, image):
        """(version, where) of the Wasmtime release `image` is, from trusted bytes only; (None, why) otherwise."""
        key = image.path or image.start
        if key not in self._versions:
            self._versions[key] = self._find_version(image)
        return self._versions[key]

    def _find_version(self, image):
        counter = VersionCounter()
        read = 0
        for m in image.readonly():
            try:
                for _, chunk in self.src.iter_chunks(m):
                    counter.feed(chunk)
                    read += len(chunk)
                    if counter.definitive:
                        break
            except UnreadableMemoryError:
                pass
            counter.cut()  # mappings are not contiguous: no match spans two
            if counter.definitive:
                break
        found = best_version(counter.finish())
        if found:
            return found, f"version string in {image.describe()}"
        path, trust = self.trusted_file(image)
        if path is None:
            lost = "its read-only bytes are not in the target" if not read else "no version string in its bytes"
            return None, f"{lost}, and {trust}" if image.path else lost
        counter = VersionCounter()
        try:
            with open_regular(path) as f:
                at = None
                for start, chunk in _mapped_chunks(f, image.readonly()):
                    if start != at:
                        counter.cut()  # ranges not contiguous in the file: no match spans two
                    counter.feed(chunk)
                    at = start + len(chunk)
                    if counter.definitive:
                        break
        except OSError as e:
            return None, f"cannot read {path}: {e.strerror or e}"
        found = best_version(counter.finish())
        if found:
            return found, f"version string in {image.path} (read from {trust}: not in the target's memory)"
        return None, f"no version string in {image.name} nor in {path}"



def _mapped_chunks(f, mappings, budget=MAX_FILE_SCAN):
    """(file offset, bytes) of open file `f` over what `mappings` map, FILE_CHUNK at a time, in file order
    and each file byte once (a file mapped many times is read once), at most `budget` bytes in all."""
    size = os.fstat(f.fileno()).st_size
    ranges = sorted((m.offset, min(m.offset + m.size, size)) for m in mappings if 0 <= m.offset < size)
    done = 0  # file bytes before this were read already
    for start, end in ranges:
        start = max(start, done)
        while start < end and budget > 0:
            chunk = os.pread(f.fileno(), min(FILE_CHUNK, end - start, budget), start)
            if not chunk:
                return
            yield start, chunk
            start += len(chunk)
            budget -= len(chunk)
        done = max(done, start)


def unchanged_mappings(mappings):
    """The mappings whose bytes stay the file's once loaded: the first page (ELF and program headers, build-id
    note) and code. Read-only data may not be: RELRO segments are relocated before they are made read-only."""
    return [m for m in mappings if m.readable and not m.writable and (m.offset == 0 or m.executable)]


def compare_file(src, f, mappings):
    """((file offset, address) of the first byte where file `f` and the target differ, or None; the file offsets
    of the pages compared).

    One page is compared at the start of each of `unchanged_mappings`; pages
    the target does not hold are skipped.
    """
    compared = []
    for m in unchanged_mappings(mappings):
        size = min(COMPARE_BYTES, m.size)
        try:
            theirs = src.read(m.start, size)
        except UnreadableMemoryError:
            continue
        f.seek(m.offset)
        ours = f.read(size)
        if ours:  # a file's last page is mapped whole: past the file's end the kernel shows zeros
            ours += bytes(size - len(ours))
        if ours != theirs:
            first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            return (m.offset + first, m.start + first), compared
        compared.append(m.offset)
    return None, compared

