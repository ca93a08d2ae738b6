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

Scanning is fast and linear in the bytes, whatever they hold: numpy evaluates the pattern
around every literal b".0." (`_found`); the regex stays the definition, checked against it.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

__all__ = ["VERSION_PATTERN", "version_candidates", "wasmtime_version_in", "VersionCounter", "best_version"]

# The start of Wasmtime's `bug!` message, right after the version in it (Wasmtime >= 45).
_ANCHOR = b"\n\nThis is a bug in Wasmtime"
# Bytes that may not come right before a version: it would be the tail of a number, path, crate-NNN or pkg@NNN.
_NOT_BEFORE = b"0123456789.@+/_-"
# Digits a major and a patch version may have (MAJOR.0.PATCH).
_MAX_DIGITS = 3

VERSION_PATTERN = re.compile(
    rb"(?<![" + re.escape(_NOT_BEFORE) + rb"])"
    rb"(?P<version>[1-9][0-9]{0,%d}\.0\.(?:0|[1-9][0-9]{0,%d}))" % (_MAX_DIGITS - 1, _MAX_DIGITS - 1)
    + rb"(?:(?P<anchored>" + re.escape(_ANCHOR) + rb")"  # Wasmtime >= 45: the bug! message
    rb"|(?=[A-Za-z]))"  # a bare literal glued to the next one
)

# Bytes searched per numpy pass: the temporaries (a few bytes per byte searched) stay a few MB.
_BLOCK = 1 << 20
# A b".0." needs, before it, one digit more than a major may have (the longest run is the major) and the byte
# before those; after it, the patch, one digit more, and the `bug!` text.
_BEFORE = _MAX_DIGITS + 2
_AFTER = 3 + _MAX_DIGITS + 1 + len(_ANCHOR)
_IS_DIGIT, _IS_NONZERO, _IS_LETTER, _IS_BARRED = (np.isin(np.arange(256), list(chars)) for chars in (
    b"0123456789", b"123456789", b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", _NOT_BEFORE))
_DOT, _ZERO, _NEWLINE = b"."[0], b"0"[0], b"\n"[0]
_NONE = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))


def _blocks(data):
    """(starts, versions as major * 1000 + patch, anchored) of the VERSION_PATTERN matches in `data`, in order,
    one triple per block of `_BLOCK` bytes.

    The pattern evaluated with numpy around every b".0.", each test dropping the b".0."s it rules out: linear
    in the bytes whatever they hold (Python per b".0." took 5 s for 16 MiB of near-matches such as
    b"12.0.0 "). Bytes outside `data` read as 0, which no part of the pattern accepts.
    """
    a = np.frombuffer(data, np.uint8)
    n = len(a)
    for b in range(0, n, _BLOCK):
        e = min(b + _BLOCK, n)
        lo, hi = max(0, b - _BEFORE), min(n, e + _AFTER)
        w = np.zeros(_BEFORE + (e - b) + _AFTER, np.uint8)
        w[_BEFORE - (b - lo): _BEFORE + (hi - b)] = a[lo:hi]
        m = e - b
        digit = _IS_DIGIT[w]
        follows = digit | _IS_LETTER[w] | (w == _NEWLINE)  # may come after the patch's first digit

        def at(k, column):  # column[i + k] for each byte i of the block
            return column[_BEFORE + k:_BEFORE + k + m]

        # Contiguous tests first, so that only b".0."s with a digit on each side are gathered one by one.
        d = np.flatnonzero((at(0, w) == _DOT) & (at(1, w) == _ZERO) & (at(2, w) == _DOT) & at(-1, digit)
                           & at(3, digit) & at(4, follows)) + _BEFORE
        if len(d):
            yield _checked(w, digit, d, b - _BEFORE)


def _found(data):
    """`_blocks`' triples joined: every match of `data`."""
    columns = list(_blocks(data))
    return tuple(np.concatenate(column) for column in zip(*columns)) if columns else _NONE


def _run(digit, at, step):
    """How many digits (up to one more than a version part may have) follow one another from `at` on, by `step`."""
    run = digit[at]
    length = run.astype(np.int64)
    for k in range(1, _MAX_DIGITS + 1):
        run &= digit[at + k * step]
        length += run
    return length


def _checked(w, digit, d, base):
    """The matches whose b".0." is at `d` in the padded block `w` (`digit`: which of its bytes are; `base`: where
    w[0] is in the data)."""
    major_len = _run(digit, d - 1, -1)
    start = d - major_len
    keep = (major_len <= _MAX_DIGITS) & _IS_NONZERO[w[start]] & ~_IS_BARRED[w[start - 1]]
    d, start, major_len = d[keep], start[keep], major_len[keep]
    patch_len = _run(digit, d + 3, 1)
    keep = (patch_len <= _MAX_DIGITS) & ((w[d + 3] != _ZERO) | (patch_len == 1))
    d, start, major_len, patch_len = d[keep], start[keep], major_len[keep], patch_len[keep]
    after = d + 3 + patch_len
    anchored = w[after] == _NEWLINE
    for k in range(1, len(_ANCHOR)):
        anchored[anchored] = w[after[anchored] + k] == _ANCHOR[k]
    keep = anchored | _IS_LETTER[w[after]]
    d, start, major_len, patch_len, anchored = d[keep], start[keep], major_len[keep], patch_len[keep], anchored[keep]
    major = np.zeros(len(d), np.int64)
    patch = np.zeros(len(d), np.int64)
    for k in range(_MAX_DIGITS):
        major = np.where(k < major_len, major * 10 + w[start + k] - _ZERO, major)
        patch = np.where(k < patch_len, patch * 10 + w[d + 3 + k] - _ZERO, patch)
    return start + base, major * 1000 + patch, anchored


def _versions(keys):
    """{version text: how many} of `_found`'s version keys."""
    counts = np.bincount(keys)  # keys < 1000 * 1000: linear, where sorting them cost a second per 64 MiB
    values = np.flatnonzero(counts)
    counts = counts[values]
    return {f"{v // 1000}.0.{v % 1000}": int(c) for v, c in zip(values.tolist(), counts.tolist())}


def _matches(data: bytes):
    """The VERSION_PATTERN matches in `data`, in order, as match objects: the same as
    `VERSION_PATTERN.finditer(data)`, found by `_found`."""
    for start in _found(data)[0].tolist():
        yield VERSION_PATTERN.match(data, start)


def version_candidates(data: bytes) -> Counter:
    """Every version `VERSION_PATTERN` finds, as {version: (anchored matches, all matches)}."""
    counts, pinned = Counter(), Counter()
    for _, keys, anchored in _blocks(data):
        counts.update(_versions(keys))
        pinned.update(_versions(keys[anchored]))
    return Counter({v: (pinned[v], n) for v, n in counts.items()})


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
        starts, keys, anchored = _found(buf)
        at = starts + self._tail_at
        fresh = (at >= self._counted) & (at < stop)
        self.scored.update(_versions(keys[fresh]))
        self._anchored.update(_versions(keys[fresh & anchored]))
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
