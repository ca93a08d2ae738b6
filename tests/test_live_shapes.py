"""How `scan` recovers a context's shape, over memory built here: the stored copy, else `infer`.

A fake process image holds a Wasmtime-named mapping (with a version string),
an emulated context and, before it, what the runtime stores there. Nothing
here needs a real Wasmtime, so every branch is reached on purpose.
"""

import numpy as np
import pytest

from vmctx_emu.layouts.releases import wasmtime_layout
from vmctx_emu.live import scanner
from vmctx_emu.errors import UnreadableMemoryError
from vmctx_emu.live.source import Mapping, MemorySource
from vmctx_emu.live.shape import self_pointer_at, stored_sizes
from vmctx_emu.memory.instance import OwnedComponentInstance

IMAGE, HEAP, CTX = 0x7F00_0000_0000, 0x5500_0000_0000, 0x5500_0000_1000
CODE = IMAGE + 0x800  # the image's executable mapping; before it, its data (where builtins points)


class FakeSource(MemorySource):
    """An image mapping named like wasmtime-py's library and one heap mapping."""

    description = "fake process"

    def __init__(self, heap, version="50.0.0"):
        super().__init__()
        image = bytearray(0x1000)
        text = f"invalid section{version}WASMTIME_BACKTRACE_DETAILS crates/wasmtime/src/runtime/vm.rs".encode()
        image[0x100 : 0x100 + len(text)] = text
        self.regions = {IMAGE: bytes(image), HEAP: bytes(heap)}
        self._maps = [Mapping(IMAGE, CODE, "r--p", 0, "/x/_libwasmtime.so"),
                      Mapping(CODE, IMAGE + len(image), "r-xp", CODE - IMAGE, "/x/_libwasmtime.so"),
                      Mapping(HEAP, HEAP + len(heap), "rw-p", 0, "[heap]")]

    def mappings(self):
        return list(self._maps)

    def _read(self, address, size):
        for start, data in self.regions.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start : address - start + size]
        raise UnreadableMemoryError(f"unmapped {address:#x}", address=address, size=size, reason="unmapped")


def v50_context(counts, stored=True, offsets_differ=False):
    """A heap page with a v50 context at CTX (header pointing where the runtime points it), every
    trampoline set, and before it the runtime's `VMComponentOffsets` copy and self pointer."""
    layout = wasmtime_layout("50.0.0")
    inst = OwnedComponentInstance(layout.component(**counts), ptr=8, wasmtime="50.0.0", debug_assertions=False,
                                  header={"builtins": IMAGE + 0x40, "store_context": HEAP + 0x800})
    for i in range(counts.get("num_trampolines", 0)):
        inst.set_trampoline(i, CODE + 0x200 + 0x10 * i, CODE + 0x300 + 0x10 * i, 7)
    words = np.frombuffer(inst.to_bytes(), "<u8").copy()
    words[words == inst.vmctx] = CTX  # the emulated context lives at a real address of ours: move it
    inst.close()
    raw = words.tobytes()
    offsets = layout.offsets(8, **counts)
    heap = bytearray(0x3000)
    heap[CTX - HEAP : CTX - HEAP + len(raw)] = raw
    if stored:
        regions = offsets.regions()
        flags = [r.name for r in regions].index(layout.flags_field().name)
        words = [counts.get(n, 0) for n in layout.count_names] + [r.offset for r in regions[flags:]]
        words.append(offsets.size_of_vmctx())
        if offsets_differ:  # a first stored offset no release stores: a copy our calculator does not reproduce
            words[len(layout.count_names)] = 0
        at = CTX - HEAP - 188
        heap[at : at + 4 * len(words)] = np.array(words, "<u4").tobytes()
    heap[CTX - HEAP - 16 : CTX - HEAP - 8] = CTX.to_bytes(8, "little")
    return heap


def scan_fake(heap, **kw):
    return scanner.scan(FakeSource(heap), **kw)


def test_the_stored_copy_gives_the_shape():
    counts = {"num_runtime_component_instances": 1, "num_trampolines": 3}
    result = scan_fake(v50_context(counts))
    [ctx] = result.contexts
    assert ctx.address == CTX and ctx.shape_from.startswith("VMComponentOffsets stored at ctx-188")
    assert {k: v for k, v in ctx.counts.items() if v} == counts and ctx.decoded.anomalies == []


def test_offsets_not_reproduced_fall_back_to_infer_on_the_stored_size():
    counts = {"num_runtime_component_instances": 1, "num_lowerings": 2}
    heap = v50_context(counts, offsets_differ=True)
    low = CTX - HEAP + 48
    heap[low : low + 32] = np.array([CODE + 0x400, HEAP + 0x2000, CODE + 0x400, HEAP + 0x2040], "<u8").tobytes()
    [ctx] = scan_fake(heap).contexts
    assert ctx.shape_from.startswith("inferred (no copy of VMComponentOffsets in the 512 bytes before it")
    # Pointers must land in the process: callee in executable memory, data in writable memory.
    assert ctx.shape_from.endswith("the only L11 (v49.0.0 - v51.0.0) shape of the 80 bytes its stored copy ends with")
    assert {k: v for k, v in ctx.counts.items() if v} == counts
    # A shape not stored is said on the context itself, not only in shape_from.
    assert [a.to_dict() for a in ctx.decoded.anomalies] == [{
        "kind": "guessed_shape", "offset": 0,
        "message": "shape guessed, not stored: 1 candidate shape fit the 80 bytes; the most plausible is decoded"}]


def test_the_most_plausible_of_several_shapes_is_decoded_and_said():
    """A set func ref may be a trampoline or an unsafe intrinsic: the bytes cannot tell, the note does."""
    counts = {"num_runtime_component_instances": 1, "num_trampolines": 2}
    [ctx] = scan_fake(v50_context(counts, offsets_differ=True)).contexts
    assert {k: v for k, v in ctx.counts.items() if v} == counts
    assert [(a.kind, a.message) for a in ctx.decoded.anomalies] == [(
        "guessed_shape", "shape guessed, not stored: 3 candidate shapes fit the 112 bytes; the most plausible is decoded")]
    assert ctx.shape_from.endswith(
        "the most plausible of 3 L11 (v49.0.0 - v51.0.0) shapes of the 112 bytes its stored copy ends with; next: "
        "num_runtime_component_instances=1, num_unsafe_intrinsics=2; "
        "num_runtime_component_instances=1, num_trampolines=1, num_unsafe_intrinsics=1")


def test_no_stored_copy_at_all_is_said():
    [ctx] = scan_fake(v50_context({"num_runtime_component_instances": 1}, stored=False)).contexts
    assert ctx.decoded is None
    assert ctx.notes == ["shape not recovered: no copy of VMComponentOffsets in the 512 bytes before it whose "
                         "offsets our L11 (v49.0.0 - v51.0.0) calculator reproduces; no stored size to infer it "
                         "from: not decoded"]


# Words just before real contexts (probe of wheels 33-51, see the note of issue 10): the size each copy ends with.
REAL_WINDOWS = [
    ("33.0.0", [0, 1, 5, 3, 0, 8, 16, 32, 48, 208, 208, 208, 208, 208, 208, 208, 232, 624257552, 22005], 232),
    ("34.0.0", [2, 0, 1, 0, 3, 6, 4, 4, 0, 8, 16, 32, 128, 256, 256, 272, 272, 280, 280, 304, 336, 0, 3811301232],
     336),
    ("41.0.0", [0, 1, 5, 0, 3, 0, 8, 16, 32, 48, 208, 208, 208, 208, 208, 208, 208, 208, 232, 0, 4282765216], 232),
    ("48.0.0", [1, 0, 3, 6, 4, 0, 4, 0, 8, 16, 32, 128, 144, 272, 272, 272, 288, 288, 296, 296, 320, 352,
                3305855488, 21929], 352),
    ("50.0.0", [0, 0, 0, 0, 305, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 32, 48, 80, 80, 96, 96, 96, 96, 96, 96, 96,
                907076032, 21990], 96),
    ("51.0.0", [2076942112, 32706, 417, 0, 0, 2, 2, 0, 1, 0, 3, 1, 2, 0, 0, 32, 48, 112, 112, 144, 160, 160, 168,
                168, 192, 192, 4162808432, 21877], 192),
]


@pytest.mark.parametrize("release, words, size", REAL_WINDOWS, ids=[w[0] for w in REAL_WINDOWS])
def test_the_stored_size_is_found_without_the_layout(release, words, size):
    smallest = wasmtime_layout(release).offsets(8).size_of_vmctx()
    assert stored_sizes(np.array(words, "<u4"), smallest)[0] == size


@pytest.mark.parametrize("words", [[0, 0, 0, 0, 304, 0], [0, 8, 16, 305, 0], [0, 8, 16, 32, 40], [100, 200, 300, 400, 0]],
                         ids=["two distinct values", "not pointer-aligned", "run goes on", "starts too high"])
def test_words_that_are_no_stored_size(words):
    assert stored_sizes(np.array(words, "<u4"), 32) == []


@pytest.mark.parametrize("release, at", [("33.0.2", -72), ("34.0.0", -128), ("35.0.0", -16), ("50.0.0", -16),
                                         ("51.0.0", -16), ("32.0.1", None), ("seed", None)])
def test_where_each_release_keeps_the_context_address(release, at):
    """Measured live in the wheels 33-51; a context with no vmctx set is told from a copy by it."""
    assert self_pointer_at([release]) == at


def test_a_context_without_its_self_pointer_is_a_copy():
    heap = v50_context({"num_runtime_component_instances": 1})
    heap[CTX - HEAP - 16 : CTX - HEAP - 8] = bytes(8)
    result = scan_fake(heap)
    assert result.contexts == [] and result.notes == [
        "1 copy of a context left out: the ComponentInstance around it does not hold its address, or its vmctx "
        "fields name another"]


@pytest.mark.parametrize("head", [
    b"compat32" + (CODE + 0x100).to_bytes(8, "little"),       # a Python string seen in a real child
    b"comp\0\0\0\0" + (CODE + 0x100).to_bytes(8, "little"),   # builtins into the image's code, not its data
    b"comp\0\0\0\1" + (IMAGE + 0x40).to_bytes(8, "little"),   # padding after the magic not zero
], ids=["compat32", "builtins into code", "padding"])
def test_look_alikes_are_no_contexts(head):
    heap = v50_context({"num_runtime_component_instances": 1})
    heap[CTX - HEAP : CTX - HEAP + 16] = head
    result = scan_fake(heap)
    # No context; where no candidate is left at all, the note says so and names the Wasmtime found by its code.
    assert result.contexts == [] and result.wasmtime == "50.0.0"
    assert set(result.notes) <= {"no component context: no component context magic in its writable memory; "
                                 "Wasmtime's code is mapped from /x/_libwasmtime.so mapped at 0x7f0000000000"}


def test_a_header_pointing_nowhere_needs_its_stored_copy_even_with_the_release_given():
    """Builtins in no mapping (an image the target does not describe): only a reproduced copy makes it a context."""
    counts = {"num_runtime_component_instances": 1, "num_trampolines": 1}
    nowhere = (0x6600_0000_0040).to_bytes(8, "little")
    for stored, found in ((True, 1), (False, 0)):
        heap = v50_context(counts, stored=stored)
        heap[CTX - HEAP + 8 : CTX - HEAP + 16] = nowhere
        result = scan_fake(heap, wasmtime="50.0.0")
        assert len(result.contexts) == found, result.notes
        if found:
            [ctx] = result.contexts
            assert {k: v for k, v in ctx.counts.items() if v} == counts
            assert ctx.image == "no mapping the target describes"
    heap = v50_context(counts)
    heap[CTX - HEAP + 8 : CTX - HEAP + 16] = nowhere
    assert scan_fake(heap).contexts == []  # without the release, a header pointing nowhere is no context


def test_the_header_bytes_read_with_each_candidate_hold_every_layouts_header():
    from vmctx_emu.layouts.releases import LAYOUTS

    ends = [r.end for layout in LAYOUTS for r, f in zip(layout.offsets(8).regions(), layout.declared_fields())
            if f.header_name()]
    assert scanner.HEAD == max(ends)
