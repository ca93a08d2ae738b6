"""`infer_shapes`: the true shape is always among the candidates, and every candidate fits the dump."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance, VMComponentOffsets, VMLowering
from vmctx_emu.layouts.releases import SEED

COUNT_NAMES = SEED.count_names
from vmctx_emu.dumps.decode import decode
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.dumps.infer import InferError, infer_shapes

shapes = st.builds(Component, **{n: st.integers(0, 4) for n in COUNT_NAMES})
targets = st.sampled_from([(4, "little"), (4, "big"), (8, "little"), (8, "big")])


@settings(max_examples=150, deadline=None)
@given(shapes, targets, st.booleans(), st.data())
def test_true_shape_is_a_candidate_and_candidates_fit(shape, target, set_some, data):
    ptr, order = target
    inst = OwnedComponentInstance(shape, (0x10, 0x20), ptr=ptr, byte_order=order)
    if set_some:
        for i in range(shape.num_lowerings):
            if data.draw(st.booleans()):
                inst.set_lowering(i, VMLowering(0x100 + i, 0x200 + i), 0x300 + i, i)
        for i in range(shape.num_runtime_memories):
            if data.draw(st.booleans()):
                inst.set_runtime_memory(i, 0x400 + i)
    result = infer_shapes(inst.to_bytes(), ptr, order, address=inst.vmctx)
    candidates = list(result.shapes(limit=5000))
    assert result.count >= 1
    if result.count <= 5000:
        assert shape in candidates and len(candidates) == result.count
        assert len(set(candidates)) == len(candidates)
    for candidate in candidates[:50]:
        assert VMComponentOffsets(ptr, candidate).size_of_vmctx() == len(inst.to_bytes())
        ctx = DumpedContext(inst.to_bytes(), candidate, ptr, order, address=inst.vmctx)
        assert decode(ctx).anomalies == [], candidate


def test_flags_only_is_unambiguous():
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=7), (1, 2), ptr=8)
    result = infer_shapes(inst.to_bytes(), 8, "little")
    assert result.count == 1 and list(result.shapes()) == [inst.offsets.component]


def test_pointer_split_is_counted_combinatorially():
    shape = Component(num_runtime_memories=2, num_runtime_reallocs=1, num_runtime_post_returns=1)
    inst = OwnedComponentInstance(shape, (1, 2), ptr=8)
    result = infer_shapes(inst.to_bytes(), 8, "little")
    # 4 interchangeable pointer words: C(4 + 2, 2) = 15 splits, or 2 of them
    # as one lowering pair (L=1 needs an anyfunc, and there is none): 15.
    assert result.count == 15


@pytest.mark.parametrize("data, needle", [
    (b"comp", "shorter than the smallest context"),
    (b"\0" * 64, "all zeros"),
    (b"co", "too short to hold the magic"),
])
def test_unexplainable_dumps(data, needle):
    with pytest.raises(InferError, match=needle):
        infer_shapes(data, 8, "little")
