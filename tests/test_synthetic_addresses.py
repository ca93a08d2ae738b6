"""Synthetic addresses of emulated contexts: first fit, never overlapping, O(1) neighbours per allocation."""

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance, VMComponentContext, VMContextError
from vmctx_emu.memory.buffer import LIVE, LiveContexts
from vmctx_emu.memory.instance import _PAGE, _SYNTHETIC_BASE


def first_fit(live, size, base, limit, align):
    """The search as it was: sort every live context, walk them all (O(N log N) per allocation)."""
    candidate = base
    for start, end in sorted(live):
        if candidate + size <= start:
            break
        if end > candidate:
            candidate = -(-end // align) * align
    return None if candidate + size > limit else candidate


def test_8000_instances_look_at_a_constant_number_of_neighbours_each():
    """Once O(N²): every new instance sorted and walked all live ones (8,000 took 27 s)."""
    n = 8000
    before = LIVE.probes
    keep = [OwnedComponentInstance(Component(num_lowerings=1), ptr=4, byte_order="big") for _ in range(n)]
    probes = LIVE.probes - before
    assert probes <= 3 * n, f"{probes} probes for {n} instances"
    starts = sorted(i.vmctx for i in keep)
    assert all(b - a >= _PAGE for a, b in zip(starts, starts[1:]))
    for inst in keep:
        inst.close()


def test_a_freed_range_is_reused_first():
    a, b, c = (OwnedComponentInstance(Component(num_lowerings=1), ptr=4) for _ in range(3))
    hole = b.vmctx
    b.close()
    d = OwnedComponentInstance(Component(num_lowerings=1), ptr=4)
    assert d.vmctx == hole
    big = OwnedComponentInstance(Component(num_lowerings=1000), ptr=4)  # does not fit a one-page hole
    assert big.vmctx > max(a.vmctx, c.vmctx, d.vmctx)


def test_a_collected_instance_leaves_the_address_book():
    inst = OwnedComponentInstance(Component(num_lowerings=1), ptr=4, byte_order="big")
    address = inst.vmctx
    del inst
    gc.collect()
    assert LIVE.get(address) is None and LIVE.containing(address + 8) is None
    again = OwnedComponentInstance(Component(num_lowerings=1), ptr=4, byte_order="big")
    assert again.vmctx <= address  # first fit: the freed range (or a lower one) is taken again


def test_interior_addresses_and_explicit_overlaps_are_found():
    book = LiveContexts()

    class Owner:
        pass

    owners = [Owner() for _ in range(3)]
    book.add(0x1000, owners[0], 0x100)
    book.add(0x1080, owners[1], 0x10)  # inside the first (an explicit address may do that)
    book.add(0x5000, owners[2], 0x3000)
    assert book.containing(0x10FF) is owners[0] and book.containing(0x7FFF) is owners[2]
    assert book.containing(0x1100) is None and book.containing(0x8000) is None
    assert book.free_range(0x10, 0x1000, 1 << 32, 0x100) == 0x1100
    assert book.free_range(0x4000, 0x1000, 1 << 32, 0x100) == 0x8000
    with pytest.raises(ValueError, match="no synthetic address below 0x9000 has room for 4097 bytes"):
        book.free_range(0x1001, 0x5000, 0x9000, 0x100)


@st.composite
def programs(draw):
    """Allocations (size in bytes) and frees (index of an earlier allocation) in some order."""
    steps = []
    for _ in range(draw(st.integers(1, 40))):
        if steps and draw(st.booleans()):
            steps.append(("free", draw(st.integers(0, len(steps) - 1))))
        else:
            steps.append(("alloc", draw(st.sampled_from([1, 0x10, 0x1000, 0x1001, 0x3000]))))
    return steps


@settings(max_examples=200, deadline=None)
@given(programs(), st.sampled_from([0x10, 0x1000]))
def test_free_range_is_first_fit_over_live_ranges(program, align):
    book, live, objs = LiveContexts(), {}, {}
    base, limit = 0x10000, 0x10000 + 0x20000

    class Owner:
        pass

    for op, arg in program:
        if op == "alloc":
            expected = first_fit(live.values(), arg, base, limit, align)
            if expected is None:
                with pytest.raises(ValueError, match="no synthetic address"):
                    book.free_range(arg, base, limit, align)
                continue
            got = book.free_range(arg, base, limit, align)
            assert got == expected
            objs[got] = Owner()
            book.add(got, objs[got], arg)
            live[got] = (got, got + arg)
        else:
            starts = sorted(live)
            if starts:
                start = starts[arg % len(starts)]
                if arg % 2:
                    book.remove(start)
                del objs[start]  # the last reference: collected, or removed just before
                del live[start]
                assert book.get(start) is None


def test_from_opaque_still_finds_every_live_context_among_many():
    keep = [OwnedComponentInstance(Component(num_lowerings=i % 7), ptr=4) for i in range(300)]
    for inst in keep[::37]:
        assert VMComponentContext.from_opaque(inst.vmctx) is inst
        with pytest.raises(VMContextError, match=rf"lies at offset 8 inside the context at {inst.vmctx:#x}"):
            VMComponentContext.from_opaque(inst.vmctx + 8)
    addresses = [inst.vmctx for inst in keep]
    for inst in keep:
        inst.close()
    assert all(LIVE.get(address) is None for address in addresses)
    assert _SYNTHETIC_BASE == 0x1000_0000
