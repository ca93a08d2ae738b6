"""The geometry table (`memory/geometry.py`) agrees with the offsets class, for every release, pointer
size 4 and 8 and both byte orders; `get`/`set` and their short paths (Python and C) agree with the
checked path byte for byte."""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import ArgumentValueError, ClosedError, ComponentIndexError, OwnedComponentInstance
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.layouts.releases import LAYOUTS
from vmctx_emu.memory.geometry import geometry
from vmctx_emu.memory.native import c_setter, ffi, run_setter
from vmctx_emu.memory.reader import RUST_ACCESSORS

TARGETS = [(layout, ptr, order) for layout in LAYOUTS for ptr in (4, 8) for order in ("little", "big")
           if ptr in layout.valid_ptr_sizes]


def target_id(target):
    layout, ptr, order = target
    return f"{layout.first or 'seed'}-ptr{ptr}-{order}"


@pytest.mark.parametrize("target", TARGETS, ids=target_id)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_table_places_every_field_where_the_offsets_class_does(target, data):
    layout, ptr, order = target
    table = geometry(layout, ptr, order)
    counts = data.draw(st.fixed_dictionaries({n: st.integers(0, 4) for n in layout.count_names}))
    offsets = layout.offsets(ptr, **counts)
    assert table is geometry(layout, ptr, order)  # built once
    assert list(table.fields) == [f.name for f in layout.declared_fields()]
    for field in layout.declared_fields():
        place, region = table.fields[field.name], offsets.region(field.name)
        assert place.stride == region.elem_size and place.element.size <= place.stride
        for sub in place.subs:
            assert sub.offset == field.sub_offset(sub.name, ptr)
            assert sub.width == sub.word.size == (ptr if sub.kind == "ptr" else 4)
            assert sub.word.format[0] == ("<" if order == "little" else ">")
        for i in range(region.count):
            at = region.offset + i * place.stride
            if field.element:
                assert getattr(offsets, field.element)(i) == at
            if field.array:
                assert getattr(offsets, field.array)().at(i) == at
            for sub in place.subs if field.subfield_accessors else ():
                assert getattr(offsets, f"{field.subfield_accessors}_{sub.name}")(i) == at + sub.offset
        if field.array:
            array = getattr(offsets, field.array)()
            assert (array.begin(), array.stride(), array.count()) == (region.offset, place.stride, region.count)
        if field.subfield_accessors:
            prefix = field.subfield_accessors
            assert getattr(offsets, f"{prefix}_size")() == place.stride
            assert [getattr(offsets, f"{prefix}_{s.name}_offset")() for s in place.subs] == [s.offset for s in place.subs]


@pytest.mark.parametrize("target", TARGETS, ids=target_id)
def test_an_element_packed_by_the_table_reads_back_through_the_numpy_views(target):
    layout, ptr, order = target
    header = {n: (0x10, 0x20) if n == "store" else 0x30 for n in layout.header_names()}
    inst = OwnedComponentInstance(dict.fromkeys(layout.count_names, 2), ptr=ptr, byte_order=order,
                                  wasmtime=layout, header=header, debug_assertions=False)
    table = inst.geometry
    for name, place in table.fields.items():
        region = inst.offsets.region(name)
        values = [0x01020304 + 0x10 * k for k in range(len(place.subs))]  # fits every width
        for i in range(region.count):
            in_memory = [None] * len(values)
            for k, position in enumerate(place.memory_order):
                in_memory[position] = values[k] + i
            place.element.pack_into(inst.memory, region.offset + i * place.stride, *in_memory)
        for k, sub in enumerate(place.subs):
            assert inst.subview(name, sub.name).tolist() == [values[k] + i for i in range(region.count)]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.first or "seed")
def test_the_rust_accessors_are_the_releases_own(layout):
    table = geometry(layout, 8, sys.byteorder)
    header = {n: (0x10, 0x20) if n == "store" else 0x30 for n in layout.header_names()}
    inst = OwnedComponentInstance({}, wasmtime=layout, header=header)
    dumped = DumpedContext(inst.to_bytes(), inst.offsets.component, 8, sys.byteorder, wasmtime=layout)
    assert set(table.getters) | set(table.setters) <= RUST_ACCESSORS
    for name in RUST_ACCESSORS:
        assert hasattr(inst, name) == (name in table.getters or name in table.setters), name
        assert hasattr(dumped, name) == (name in table.getters), name
        assert (name in dir(inst)) == hasattr(inst, name)


def test_get_and_set_are_the_named_accessors():
    layout = LAYOUTS[-1]
    header = {n: 0x30 for n in layout.header_names()}
    inst = OwnedComponentInstance({"num_lowerings": 2, "num_runtime_memories": 1}, wasmtime=layout, header=header)
    inst.set("set_lowering", 1, (0x100, 0x200))
    inst.set("set_runtime_memory", 0, 0x300)
    assert inst.get("lowerings", 1) == inst.lowering(1) == (0x100, 0x200)
    assert inst.get("memories", 0) == inst.runtime_memory(0) == 0x300
    with pytest.raises(ArgumentValueError, match="has no setter 'set_always_trap'"):
        inst.set("set_always_trap", 0, 1, 2)
    with pytest.raises(ArgumentValueError, match="'magic' has no runtime getter"):
        inst.get("magic", 0)
    with pytest.raises(ComponentIndexError):
        inst.get("lowerings", 2)


def checked_only(inst):
    """`inst` with its short paths off: every call takes the checked path (and makes no plan)."""
    inst._plan_get = inst._plan_set = lambda *a: None
    return inst


def fresh(layout, ptr, debug, count=3):
    header = {n: (0x1000, 0x2000) if n == "store" else 0x3000 for n in layout.header_names()}
    return OwnedComponentInstance(dict.fromkeys(layout.count_names, count), ptr=ptr, wasmtime=layout,
                                  header=header, debug_assertions=debug)


VALUE = st.one_of(st.integers(-2, 2), st.integers(0, 2**64 + 1), st.sampled_from([True, 1.5, None, 2**32, 2**32 - 1]))


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.first or "seed")
@settings(max_examples=40, deadline=None)
@given(ptr=st.sampled_from([4, 8]), debug=st.booleans(), data=st.data())
def test_the_short_paths_write_and_refuse_as_the_checked_path(layout, ptr, debug, data):
    """Setters and getters with their short paths (Python, and C for several values) against the same
    calls taking only the checked path: the same bytes, the same results and errors."""
    fast, slow = fresh(layout, ptr, debug), checked_only(fresh(layout, ptr, debug))
    for _ in range(data.draw(st.integers(1, 12))):
        spec = data.draw(st.sampled_from(layout.setters))
        index = data.draw(st.integers(-1, 3))
        args = []
        for arg in fast.geometry.setters[spec.name].args:
            values = [data.draw(VALUE) for _ in arg.subs]
            if len(values) == 1:
                args.append(values[0])
            elif arg.value_tuple is not None and data.draw(st.booleans()):
                args.append(arg.value_tuple(*values))  # the namedtuple the short path takes
            else:
                args.append(tuple(values))
        if data.draw(st.booleans()):
            args = args[: data.draw(st.integers(0, len(args) + 1))]  # too few (or the same)
        outcome = []
        for inst in (fast, slow):
            try:
                inst.set(spec.name, index, *args)
                outcome.append(None)
            except Exception as e:  # noqa: BLE001 (compared below)
                outcome.append((type(e), str(e)))
        assert outcome[0] == outcome[1]
        # The own-address words differ (two contexts); everything else is equal.
        assert _own_words_marked(fast) == _own_words_marked(slow)
    for name in fast.geometry.getter_of:
        for index in range(-1, 4):
            results = []
            for inst in (fast, slow):
                try:
                    value = inst.get(name, index)
                    results.append(value - inst.vmctx if fast.geometry.getter_of[name].returns_address else value)
                except Exception as e:  # noqa: BLE001
                    results.append((type(e), str(e)))
            assert results[0] == results[1]


def _own_words_marked(inst):
    """The context's bytes with each `vmctx` word that holds its own address replaced by b"SELF"."""
    data, p = bytearray(inst.to_bytes()), int(inst.ptr)
    own = inst.vmctx.to_bytes(p, inst.byte_order)
    for name, place in inst.geometry.fields.items():
        region = inst.offsets.region(name)
        for sub in place.subs:
            for i in range(region.count if sub.role == "vmctx" else 0):
                at = region.offset + i * place.stride + sub.offset
                if data[at:at + p] == own:
                    data[at:at + p] = b"SELF".ljust(p, b".")[:p]
    return bytes(data)


def test_a_c_setter_whose_words_leave_the_context_is_refused_before_it_runs():
    buffer = ffi.new("uint8_t[]", 64)
    address = int(ffi.cast("uintptr_t", buffer))
    with pytest.raises(ArgumentValueError, match="leave the context's 64 bytes"):
        c_setter(address, 64, 2, [(56, 8, 8, 1)], [], [], 0, 0)  # element 1 would end at 72
    with pytest.raises(ArgumentValueError, match="leave the context's 64 bytes"):
        c_setter(address, 64, 1, [(0, 8, 3, 1)], [], [], 0, 0)  # a 3-byte word
    setter, pack, _ = c_setter(address, 64, 2, [(0, 16, 8, 1), (8, 16, 4, 0)], [(0, 16, 8, 0)], [], 7, 0)
    assert run_setter(setter, 2, 0, pack.pack(1, 2)) == 1  # index past the count
    assert run_setter(setter, 0, 0, pack.pack(1, 2**32)) == 1  # a u32 too wide
    assert run_setter(setter, 0, 0, pack.pack(0, 2)) == 1  # null where non-null
    assert run_setter(setter, 0, 1, pack.pack(1, 2)) == 1  # debug: the asserted word is not INVALID (7)
    assert bytes(ffi.buffer(buffer)) == bytes(64)  # nothing written by a refusal
    assert run_setter(setter, 1, 0, pack.pack(5, 6)) == 0
    assert bytes(ffi.buffer(buffer))[16:28] == (5).to_bytes(8, sys.byteorder) + (6).to_bytes(4, sys.byteorder)


def test_closing_drops_every_view_the_short_paths_use():
    inst = fresh(LAYOUTS[0], 8, True)
    flags = inst.instance_flags(0)
    set_memory, memory = inst.set_runtime_memory, inst.runtime_memory
    set_memory(0, 0x10)
    inst.set_lowering(0, (1, 2), 3, 4)
    assert memory(0) == 0x10 and flags.may_enter and inst.words
    inst.close()
    assert inst.words == {} and not any(name in vars(inst) for name in RUST_ACCESSORS)
    for call in (lambda: flags.may_enter, lambda: memory(0), lambda: set_memory(1, 5), lambda: inst.lowering(0)):
        with pytest.raises(ClosedError):
            call()
