"""Which Wasmtime release a `libwasmtime` is, read from the library's own bytes.

Wasmtime (the `wasmtime` crate, hence the C API and wasmtime-py's `_libwasmtime.so`)
embeds its `CARGO_PKG_VERSION` as a plain string literal: the precompiled-artifact
compatibility check (`ModuleVersionStrategy::WasmtimeVersion`) compares against it. Rust
packs string literals back to back with no terminator, so in `.rodata` the version is
glued to whatever literals the linker put next to it, e.g. (wasmtime-py wheels, x86-64)::

    33.0.0  b"...component/linker.rs33.0.0WASMTIME_BACKTRACE_DETAILS..."
    44.0.0  b"...(ref null 44.0.0cmpxchg16b..."
    50.0.1  b"...(closure break) ======50.0.0expected ReadState..."
    51.0.0  b"...out of bounds of memory51.0.0expected ReadState..."

From Wasmtime 45 on there is also a stable, self-describing copy in the message of its
internal `bug!` trap: b"\\nversion: 45.0.0\\n\\nThis is a bug in Wasmtime that was ...".

No wasmtime crate path carries the version (the C API is built inside the wasmtime
workspace, so its paths read `crates/wasmtime/src/...`); other versions in the library
belong to other things and must not match:

* crate paths `.../wast-261.0.0/src/...` (preceded by `-`, followed by `/`),
* WIT packages `wasi:cli/stdout@0.2.12` (preceded by `@`),
* the linker in `.comment`, `Linker: LLD 22.1.8 (...)` (followed by a space),
* stray binary or quoted data such as `'''0.0.0index`.

`VERSION_PATTERN` encodes that: a `MAJOR.0.PATCH` (every Wasmtime release since 1.0 has
minor version 0) that is not the tail of a longer number, path, crate or package version,
and that is either followed by the `bug!` text (`anchored`) or glued to the next literal
(followed by an ASCII letter). Checked against every wasmtime-py wheel 33.0.0 ... 51.0.0:
exactly one distinct version matches in each, and it is the runtime's own (a wheel may
bundle another patch: wheel 37.0.0 -> 37.0.2, 38.0.0 -> 38.0.1, 47.0.1 -> 47.0.0,
50.0.1 -> 50.0.0).

It names the version of a library already known to be Wasmtime; it does not tell
whether a library is Wasmtime. Other programs pack their own versions the same way
(libclang-cpp 14 yields "14.0.6", libperl "1.0.111"), so pick the library first, e.g.
by its path (`_libwasmtime.so`, `libwasmtime.so`).

Scanning is fast (about 15 ms for a 30 MB library): the scan runs the pattern only
where the literal b".0." occurs.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["VERSION_PATTERN", "version_candidates", "wasmtime_version_in", "VersionCounter", "best_version"]

VERSION_PATTERN = re.compile(
    rb"""
    (?<![0-9.@+/_-])                                    # not inside a number, path, crate-NNN or pkg@NNN
    (?P<version>[1-9][0-9]{0,2}\.0\.(?:0|[1-9][0-9]{0,2}))
    (?:
        (?P<anchored>\n\nThis\x20is\x20a\x20bug\x20in\x20Wasmtime)   # Wasmtime >= 45: the bug! message
      | (?=[A-Za-z])                                    # a bare literal glued to the next one
    )
    """,
    re.VERBOSE,
)

# Every VERSION_PATTERN match contains b".0." two or three bytes after its start, so the
# fast literal search below visits all of them without running the lookbehind on every byte
# (a plain VERSION_PATTERN.finditer over a 30 MB library takes about a second).
_DOT_ZERO_DOT = re.compile(rb"\.0\.")
_MAX_MAJOR_DIGITS = 3


def _matches(data: bytes):
    """The VERSION_PATTERN matches in `data`, in order: the same as `VERSION_PATTERN.finditer(data)`."""
    end = 0
    for hit in _DOT_ZERO_DOT.finditer(data):
        dot = hit.start()
        for start in range(max(end, dot - _MAX_MAJOR_DIGITS), dot):
            m = VERSION_PATTERN.match(data, start)
            if m:
                end = m.end()
                yield m
                break


def version_candidates(data: bytes) -> Counter:
    """Every version `VERSION_PATTERN` finds, as {version: (anchored matches, all matches)}."""
    counts: Counter = Counter()
    anchored: Counter = Counter()
    for m in _matches(data):
        version = m.group("version").decode("ascii")
        counts[version] += 1
        if m.group("anchored"):
            anchored[version] += 1
    return Counter({v: (anchored[v], n) for v, n in counts.items()})


class VersionCounter:
    """`version_candidates` over a stream of consecutive blocks, each match counted once, whatever the cuts.

    A match needs up to `_LOOKAHEAD` bytes after its start (the version,
    then the `bug!` text or the next literal's letter), so each block is
    searched with the last bytes of the one before it, and a match is
    counted only where the bytes after it are already in hand.
    """

    _LOOKAHEAD = 64

    def __init__(self):
        self.scored: Counter = Counter()
        self._anchored: Counter = Counter()
        self._tail = b""
        self._tail_at = 0  # stream offset of the tail's first byte
        self._counted = 0  # matches starting before this stream offset are counted

    def feed(self, data: bytes, final: bool = False):
        buf = self._tail + bytes(data)
        end = self._tail_at + len(buf)
        stop = end if final else end - self._LOOKAHEAD
        for m in _matches(buf):
            at = self._tail_at + m.start()
            if self._counted <= at < stop:
                version = m.group("version").decode("ascii")
                self.scored[version] += 1
                if m.group("anchored"):
                    self._anchored[version] += 1
        self._counted = max(self._counted, stop)
        keep = min(len(buf), 2 * self._LOOKAHEAD)
        self._tail, self._tail_at = buf[len(buf) - keep:], end - keep

    @property
    def definitive(self):
        """Whether a version was found in the `bug!` message (Wasmtime >= 45): no later block can outrank it."""
        return bool(self._anchored)

    def cut(self):
        """End the current stream: what is fed next is not contiguous with it. The scores stay."""
        self.feed(b"", final=True)
        self._tail = b""

    def finish(self):
        self.feed(b"", final=True)
        return Counter({v: (self._anchored[v], n) for v, n in self.scored.items()})


def best_version(scored: Counter) -> str | None:
    """The answer `wasmtime_version_in` gives for `version_candidates`' scores."""
    if not scored:
        return None
    ranked = sorted(scored.items(), key=lambda item: item[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def wasmtime_version_in(data: bytes) -> str | None:
    """The Wasmtime version embedded in a library's bytes, such as "50.0.0", or None.

    One distinct candidate is the answer. With several, the most specific wins: a version
    found in the `bug!` message (Wasmtime >= 45) beats bare literals; then the most
    frequent. A tie between distinct versions on both counts is ambiguous and gives None,
    as does a library with no candidate (not Wasmtime, or a release whose version string
    sits next to a non-letter).
    """
    return best_version(version_candidates(bytes(data) if not isinstance(data, bytes) else data))
