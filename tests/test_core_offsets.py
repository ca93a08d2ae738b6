"""The `VMOffsets` copy before a core VMContext: the calculator against the copies real Wasmtime stored, and
the namer naming a core VMContext's counts only when the copy is reproduced."""

import struct

import pytest

from vmctx_emu.errors import UnreadableMemoryError
from vmctx_emu.layouts.core_offsets import (CORE_OFFSETS_LAYOUTS, core_offsets, core_offsets_layout,
                                            counts_from_copy, stored_words)
from vmctx_emu.live.namer import CORE_MAGIC, AddressMap, PointerNamer
from vmctx_emu.live.source import Mapping

# The 27 u32s read 240 bytes before the "core" magic in a process of each x86_64 wasmtime-py wheel 0.40.0,
# 1.0.0, 2.0.0 and 3.0.0 (identical in the four): 9 counts, then the 17 offsets and the size.
MEASURED = {
    # 2 imported funcs, an imported global; a table, a memory, 3 globals; 3 escaped funcs (2 exports, 1 elem)
    "imports_and_definitions": (2, 0, 0, 1, 1, 1, 1, 3, 3,
                                0, 8, 16, 24, 32, 40, 56, 64, 72, 104, 104, 104, 112, 128, 136, 160, 208, 280),
    # an imported memory and table, one global, two exported funcs
    "imported_memory_and_table": (0, 1, 1, 0, 0, 0, 0, 1, 2,
                                  0, 8, 16, 24, 32, 40, 56, 64, 72, 72, 88, 112, 112, 112, 112, 112, 128, 176),
}
MEASURED_RELEASES = ("0.40.0", "1.0.0", "2.0.0", "3.0.0")


@pytest.mark.parametrize("release", MEASURED_RELEASES + ("0.40.1", "1.0.2", "2.0.2", "3.0.1"))
@pytest.mark.parametrize("shape", sorted(MEASURED))
def test_the_calculator_reproduces_the_copy_wasmtime_stored(release, shape):
    layout = core_offsets_layout(release)
    words = MEASURED[shape]
    counts = dict(zip(layout.counts, words))
    assert stored_words(layout, counts) == words
    assert counts_from_copy(layout, words) == counts


@pytest.mark.parametrize("release, layout_id", [
    ("0.40.0", "C1"), ("3.0.1", "C1"),
    ("4.0.0", None),    # `offsets` left `Instance` at v4.0.0
    ("36.0.0", None), ("50.0.1", None), ("51.0.0", None),
    ("seed", None),     # not verified: no copy known
])
def test_only_releases_that_store_a_copy_have_one(release, layout_id):
    layout = core_offsets_layout(release)
    assert (layout and layout.id) == layout_id


def test_a_copy_is_refused_unless_every_stored_offset_is_reproduced():
    layout = CORE_OFFSETS_LAYOUTS[0]
    words = list(MEASURED["imports_and_definitions"])
    for i in range(len(layout.counts), len(words)):
        changed = words[:i] + [words[i] + 8] + words[i + 1:]
        assert counts_from_copy(layout, changed) is None, layout.offset_names[i - len(layout.counts)]
    assert counts_from_copy(layout, words[:-1]) is None  # too short
    huge = [0x7fffffff] + words[1:]  # Rust's checked u32 arithmetic would panic: never stored
    assert counts_from_copy(layout, huge) is None


@pytest.mark.parametrize("ptr", [4, 8])
def test_the_offsets_follow_the_declaration_for_each_pointer_size(ptr):
    layout = CORE_OFFSETS_LAYOUTS[0]
    offsets = core_offsets(layout, {"num_owned_memories": 1, "num_defined_globals": 1}, ptr)
    assert offsets["runtime_limits"] == ptr and offsets["store"] == 5 * ptr
    assert offsets["imported_functions"] == 9 * ptr
    assert offsets["defined_globals"] % 16 == 0 and offsets["defined_globals"] >= 11 * ptr
    assert offsets["size"] == offsets["defined_globals"] + 16


class _Memory:
    """One anonymous rw mapping holding a copy then the VMContext it describes."""

    def __init__(self, start, data):
        self.start, self.data = start, bytes(data)

    def read(self, address, size):
        at = address - self.start
        if at < 0 or at + size > len(self.data):
            raise UnreadableMemoryError(f"{address:#x}")
        return self.data[at : at + size]


def _namer(words, release, distance=240):
    start, vmctx = 0x10000, 0x10000 + 256
    data = bytearray(512)
    data[256 - distance : 256 - distance + 4 * len(words)] = struct.pack(f"<{len(words)}I", *words)
    data[256:260] = CORE_MAGIC.to_bytes(4, "little")
    memory = _Memory(start, data)
    maps = AddressMap([Mapping(start, start + len(data), "rw-p", 0, None)])
    return PointerNamer(memory, maps, None, set(), None, release=release), vmctx


def test_a_core_vmcontext_says_its_counts_when_the_copy_is_reproduced():
    namer, vmctx = _namer(MEASURED["imports_and_definitions"], "3.0.0")
    found = namer.describe(vmctx, "vmctx", 0)
    assert found["kind"] == "core_vmcontext" and found["counts"]["num_defined_globals"] == 3
    assert found["text"] == (f"core VMContext at {vmctx:#x} (2 imported functions, 1 imported global, "
                             "1 defined table, 1 defined memory, 1 owned memory, 3 defined globals, 3 escaped funcs)")


@pytest.mark.parametrize("case", ["no copy in the release", "offset not reproduced", "release unknown"])
def test_a_core_vmcontext_without_a_reproduced_copy_is_named_as_before(case):
    words = list(MEASURED["imports_and_definitions"])
    release = {"no copy in the release": "50.0.1", "offset not reproduced": "3.0.0", "release unknown": None}[case]
    if case == "offset not reproduced":
        words[-1] += 16
    namer, vmctx = _namer(words, release)
    found = namer.describe(vmctx, "vmctx", 0)
    assert found == {"kind": "core_vmcontext", "text": f"core VMContext at {vmctx:#x}", "address": f"{vmctx:#x}"}
