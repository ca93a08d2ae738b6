"""`wasmtime_version_in`: the Wasmtime release a library's bytes name, and nothing else's."""

import os
import time
from importlib.metadata import PackageNotFoundError, version

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unittest.mock import patch

from vmctx_emu.live import identify
from vmctx_emu.live.identify import VERSION_PATTERN, version_candidates, wasmtime_version_in

# Real neighbourhoods of the version literal in wasmtime-py wheels (x86-64 `_libwasmtime.so`).
REAL_SNIPPETS = {
    "33.0.0": b"crates/wasmtime/src/runtime/component/linker.rs33.0.0WASMTIME_BACKTRACE_DETAILSfalsespeed",
    "35.0.0": b"unknown variant case: `35.0.0WASMTIME_BACKTRACE_DETAILSfalse",
    "37.0.2": b"invalid engine section37.0.2Module was compiled with incompatible Wasmtime version '",
    "44.0.0": b"Invalid index for file auxiliary symbol.(ref null 44.0.0cmpxchg16bssse3sse4.1",
    "50.0.0": (
        b"\x05BUG: \xc0\x0b\nlocation: \xc0\x01:\xc0\x80(\x02\nversion: 50.0.0\n\nThis is a bug in Wasmtime that was "
        b"not thought to be reachable.\x00 ======50.0.0expected ReadState::GuestReady"
    ),
    "51.0.0": b"pointer not alignedstring pointer/length out of bounds of memory51.0.0expected ReadState::GuestReady",
}

# Versions in the same libraries that are not Wasmtime's.
DECOYS = (
    b"/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/wast-261.0.0/src/parser.rs",
    b"wasi:cli/stdout@0.2.12get-stdout wasi:io/poll@0.2.6pollable",
    b"rustc version 1.91.0 (f8297e351 2025-10-28)\x00Linker: LLD 21.1.8 (/checkout/src/llvm-project/llvm",
    b"\x00\x00'''0.0.0index not found",
    b"regalloc2-0.15.2/src/ion/dump.rs hashbrown-0.16.1/src",
    b"1.20.0.0.5abc 127.0.0.1localhost 3.0.1 (x) 100.0.0.0net",
)


@pytest.mark.parametrize("expected", REAL_SNIPPETS)
def test_real_neighbourhoods(expected):
    data = b"\x7fELF\x00" + REAL_SNIPPETS[expected] + b"\x00"
    assert wasmtime_version_in(data) == expected


@pytest.mark.parametrize("decoy", DECOYS)
def test_other_versions_do_not_match(decoy):
    assert wasmtime_version_in(decoy) is None
    assert list(VERSION_PATTERN.finditer(decoy)) == []


def test_decoys_around_the_real_one():
    data = b"\x00".join(DECOYS[:4] + (REAL_SNIPPETS["44.0.0"],) + DECOYS[4:])
    assert wasmtime_version_in(data) == "44.0.0"


def test_nothing_found():
    assert wasmtime_version_in(b"") is None
    assert wasmtime_version_in(b"\x00" * 4096) is None
    assert wasmtime_version_in(b"no versions here") is None


def test_edges_of_the_buffer():
    assert wasmtime_version_in(b"42.0.0Executable") == "42.0.0"
    assert wasmtime_version_in(b"xyz42.0.0") is None  # nothing glued after: not a packed literal


def test_anchored_beats_more_frequent_bare():
    data = b"a12.0.3Foo b12.0.3Bar\nversion: 45.0.0\n\nThis is a bug in Wasmtime"
    assert version_candidates(data) == {"12.0.3": (0, 2), "45.0.0": (1, 1)}
    assert wasmtime_version_in(data) == "45.0.0"


def test_most_frequent_bare_wins_and_ties_are_ambiguous():
    assert wasmtime_version_in(b"x36.0.0Module y36.0.0WASMTIME z12.0.0Other") == "36.0.0"
    assert wasmtime_version_in(b"x36.0.0Module z12.0.0Other") is None


def test_accepts_bytes_like():
    assert wasmtime_version_in(bytearray(b"rs39.0.0CallGraph")) == "39.0.0"
    assert wasmtime_version_in(memoryview(b"rs39.0.0CallGraph")) == "39.0.0"


def test_fast_path_finds_what_the_pattern_finds():
    data = b"\x00".join(DECOYS + tuple(REAL_SNIPPETS.values())) * 3
    slow = [m.group("version").decode() for m in VERSION_PATTERN.finditer(data)]
    fast = version_candidates(data)
    assert sorted(set(slow)) == sorted(fast)
    assert all(sum(1 for s in slow if s == v) == n for v, (_, n) in fast.items())


_ALPHABET = [b"0", b"1", b"9", b".", b".0.", b"-", b"@", b"/", b"a", b"Z", b" ", b"\x00", b"\n",
             b"\n\nThis is a bug in Wasmtime", b"\n\nThis is a bug"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=60), st.sampled_from([4, 16, 1 << 20]))
def test_numpy_search_finds_exactly_what_the_pattern_finds(parts, block):
    """The numpy evaluation (block by block, matches across block edges included) against the regex that defines
    it: the same starts, versions and anchors."""
    data = b"".join(parts)
    with patch.object(identify, "_BLOCK", block):
        starts, keys, anchored = identify._found(data)
    expected = [(m.start(), m.group("version").decode(), bool(m.group("anchored")))
                for m in VERSION_PATTERN.finditer(data)]
    assert [(s, f"{k // 1000}.0.{k % 1000}", a) for s, k, a in zip(starts.tolist(), keys.tolist(),
                                                                     anchored.tolist())] == expected


@pytest.mark.parametrize("unit", [b"12.0.0 ", b"x.0.", b"-1.0.0a", b"1234.0.0a", b"1.0.0a"],
                         ids=["version-then-space", "dot-zero-dot", "crate-version", "long-major", "true-match"])
def test_planted_near_matches_cost_linear_time(unit):
    """8 MiB of one planted (near-)match (issue 20; before: Python per b".0.", 64 MiB of them 3.9 s, 16 MiB of
    b"12.0.0 " 5 s): well under a second, the version counted exactly."""
    data = (unit * ((8 << 20) // len(unit) + 1))[: 8 << 20]
    start = time.process_time()
    found = version_candidates(data)
    assert time.process_time() - start < 1  # about 0.1 s here
    assert found == ({"1.0.0": (0, (8 << 20) // len(unit))} if unit == b"1.0.0a" else {})


def _installed_library():
    try:
        import wasmtime
    except ImportError:
        return None, None
    try:
        wheel = version("wasmtime")
    except PackageNotFoundError:
        return None, None
    path = os.path.join(os.path.dirname(wasmtime.__file__), "linux-x86_64", "_libwasmtime.so")
    return (path, wheel) if os.path.exists(path) else (None, wheel)


def test_installed_library():
    path, wheel = _installed_library()
    if path is None:
        pytest.skip("no wasmtime-py with a linux-x86_64 library installed")
    if wheel != "50.0.1":
        pytest.skip(f"bundled version known for the 50.0.1 wheel only, found {wheel}")
    with open(path, "rb") as f:
        data = f.read()
    start = time.perf_counter()
    found = wasmtime_version_in(data)
    elapsed = time.perf_counter() - start
    assert found == "50.0.0"  # wheel 50.0.1 bundles Wasmtime 50.0.0
    assert elapsed < 0.5, f"{len(data)} bytes took {elapsed:.2f}s"
