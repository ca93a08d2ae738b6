"""Hypothesis properties of the seed layout over random shapes and every valid pointer size."""

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from vmctx_emu import Component, LayoutOverflowError, VMComponentOffsets
from vmctx_emu.layouts.releases import SEED

COUNT_NAMES = SEED.count_names
from vmctx_emu.layouts.fields import Field

SEED_FIELDS = SEED.fields
VALID_PTR_SIZES = SEED.valid_ptr_sizes

U32_MAX = 2**32 - 1

counts = st.one_of(
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
    st.integers(2**26, 2**30),  # near the overflow edge for every element size
)
components = st.builds(Component, **{name: counts for name in COUNT_NAMES})
ptrs = st.sampled_from(VALID_PTR_SIZES)

ELEMENT_ACCESSORS = [f for f in SEED_FIELDS if isinstance(f, Field) and f.element]


def unbounded_size(ptr, c):
    """The context's size with unbounded integers, from the Rust `fields!` list by hand."""
    def up(x, a):
        return -(-x // a) * a

    off = up(4, ptr) + 2 * ptr
    off = up(off, 16) + 16 * c.num_runtime_component_instances
    off = up(off, ptr)
    off += 3 * ptr * (c.num_lowerings + c.num_always_trap) + 2 * ptr * c.num_lowerings
    off += ptr * (c.num_runtime_memories + c.num_runtime_reallocs + c.num_runtime_post_returns)
    return off


@settings(max_examples=400, deadline=None)
@given(ptrs, components)
def test_overflow_exactly_when_u32_is_exceeded(ptr, component):
    size = unbounded_size(ptr, component)
    if size > U32_MAX:
        with pytest.raises(LayoutOverflowError):
            VMComponentOffsets(ptr, component)
    else:
        assert VMComponentOffsets(ptr, component).size_of_vmctx() == size


small_counts = st.integers(0, 3000)
small_components = st.builds(Component, **{name: small_counts for name in COUNT_NAMES})


@settings(max_examples=300, deadline=None)
@given(ptrs, small_components)
def test_regions_ordered_aligned_disjoint_and_cover_size(ptr, component):
    o = VMComponentOffsets(ptr, component)
    regions = o.regions()
    assert regions[0].name == "magic" and regions[0].offset == 0
    cursor = 0
    for r in regions:
        assert r.offset == cursor + r.padding_before, r
        assert r.offset % r.align == 0, r
        assert r.padding_before < max(r.align, 16), r
        assert r.size == r.count * r.elem_size, r
        cursor = r.end
    assert cursor == o.size_of_vmctx()


@settings(max_examples=200, deadline=None)
@given(ptrs, small_components, st.data())
@pytest.mark.parametrize("field", ELEMENT_ACCESSORS, ids=lambda f: f.element)
def test_element_accessors_in_bounds_and_raise_just_past(field, ptr, component, data):
    o = VMComponentOffsets(ptr, component)
    region = o.region(field.name)
    accessor = getattr(o, field.element)
    if region.count:
        i = data.draw(st.integers(0, region.count - 1))
        for index in {0, i, region.count - 1}:
            start = accessor(index)
            assert start == region.offset + index * region.elem_size
            assert region.offset <= start and start + region.elem_size <= region.end
    with pytest.raises(IndexError):
        accessor(region.count)
    with pytest.raises(IndexError):
        accessor(-1)
