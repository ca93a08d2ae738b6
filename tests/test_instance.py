"""Emulated memory: byte images against the spec, set-once/read-before-set, views, close, from_opaque."""

import ctypes
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import (
    FLAG_MAY_ENTER,
    FLAG_MAY_LEAVE,
    FLAG_NEEDS_POST_RETURN,
    Component,
    HostPtr,
    OwnedComponentInstance,
    VMComponentContext,
    VMContextError,
    VMLowering,
    invalid_ptr,
)
from vmctx_emu.layouts.releases import SEED

COUNT_NAMES = SEED.count_names

SAMPLE = Component(
    num_lowerings=3,
    num_runtime_memories=2,
    num_runtime_reallocs=2,
    num_runtime_post_returns=2,
    num_runtime_component_instances=2,
    num_always_trap=2,
)
STORE = (0x1122_3344, 0x5566_7788)
TARGETS = [(p, bo, dbg) for p in (4, 8) for bo in ("little", "big") for dbg in (True, False)]


def expected_image(offsets, byte_order, debug, store):
    """The spec's initialization (runtime.md steps 1-3), written word by word."""
    p = offsets.pointer_size()
    img = bytearray(offsets.size_of_vmctx())

    def put(off, value, width):
        img[off : off + width] = value.to_bytes(width, byte_order, signed=value < 0)

    img[0:4] = b"comp" if byte_order == "little" else b"pmoc"
    put(offsets.store(), store[0], p)
    put(offsets.store() + p, store[1], p)
    for i in range(offsets.num_runtime_component_instances):
        put(offsets.instance_flags(i), FLAG_MAY_ENTER | FLAG_MAY_LEAVE, 4)
    if debug:
        poison = invalid_ptr(p)
        for i in range(offsets.num_lowerings):
            for off in (offsets.lowering_callee(i), offsets.lowering_data(i), offsets.lowering_anyfunc(i)):
                put(off, poison, p)
        for i in range(offsets.num_always_trap):
            put(offsets.always_trap_anyfunc(i), poison, p)
        for n, acc in (("num_runtime_memories", offsets.runtime_memory),
                       ("num_runtime_reallocs", offsets.runtime_realloc),
                       ("num_runtime_post_returns", offsets.runtime_post_return)):
            for i in range(getattr(offsets, n)):
                put(acc(i), poison, p)
    return bytes(img)


@pytest.mark.parametrize("ptr, byte_order, debug", TARGETS,
                         ids=[f"ptr{p}-{bo}-{'debug' if d else 'release'}" for p, bo, d in TARGETS])
@pytest.mark.parametrize("component", [SAMPLE, Component(), Component(num_runtime_component_instances=5)],
                         ids=["sample", "empty", "flags-only"])
def test_initial_byte_image_matches_spec(ptr, byte_order, debug, component):
    with OwnedComponentInstance(component, STORE, ptr=ptr, byte_order=byte_order,
                                debug_assertions=debug) as inst:
        assert len(inst.memory) == inst.offsets.size_of_vmctx()
        assert inst.to_bytes() == expected_image(inst.offsets, byte_order, debug, STORE)


def test_literal_image_ptr4_big_endian_debug():
    # ptr 4: magic 0..4, store 4..12, align(16) -> flags 16..32, lowering anyfunc 32..44,
    # lowering 44..52; size 52. Big-endian: magic bytes "pmoc", poison 0xbeefbeef.
    inst = OwnedComponentInstance(Component(num_lowerings=1, num_runtime_component_instances=1), STORE,
                                  ptr=4, byte_order="big")
    assert inst.to_bytes().hex() == (
        "706d6f63" "11223344" "55667788" "00000000"          # magic, store (data, vtable), hole
        "00000003" "000000000000000000000000"                # flags global: i32 3, 12 zero bytes
        "beefbeef" "00000000" "00000000"                      # anyfunc: poisoned func_ptr, type_index, vmctx
        "beefbeef" "beefbeef"                                 # lowering: callee, data poisoned
    )


def test_host_layout_is_real_memory():
    inst = OwnedComponentInstance(SAMPLE, STORE)
    assert inst.is_host_layout
    n = inst.offsets.size_of_vmctx()
    assert ctypes.string_at(inst.vmctx, n) == inst.to_bytes()
    assert inst.vmctx % 16 == 0
    ctypes.c_int32.from_address(inst.vmctx + inst.offsets.instance_flags(1)).value = 7
    assert inst.instance_flags(1).value == 7


def test_emulated_target_uses_given_or_synthetic_address():
    a = OwnedComponentInstance(SAMPLE, STORE, ptr=4, byte_order="big")
    b = OwnedComponentInstance(SAMPLE, STORE, ptr=4, byte_order="big")
    assert a.vmctx != b.vmctx and a.vmctx < 2**32 and a.vmctx % 16 == 0
    assert not (a.vmctx <= b.vmctx < a.vmctx + a.offsets.size_of_vmctx())
    c = OwnedComponentInstance(SAMPLE, STORE, ptr=4, byte_order="little", address=0x4000_0000)
    c.set_always_trap(0, 0x1234, 9)
    assert c.always_trap_anyfunc(0) == 0x4000_0000 + c.offsets.always_trap_anyfunc(0)
    assert c.view("always_trap_anyfuncs")[0]["vmctx"] == 0x4000_0000


@pytest.mark.parametrize("kwargs, needle", [
    (dict(ptr=2), "pointer sizes (4, 8) only"),
    (dict(ptr=3), "pointer size 3 is not supported"),
    (dict(byte_order="middle"), "byte_order must be 'little' or 'big'"),
    (dict(ptr=4, address=0x1001), "16-byte aligned"),
    (dict(ptr=4, address=2**32 - 16), "does not fit a 4-byte pointer"),
    (dict(ptr=4, address=2**40), "address must be an int in [0, 2**32)"),
])
def test_bad_construction_arguments(kwargs, needle):
    with pytest.raises(ValueError) as e:
        OwnedComponentInstance(SAMPLE, STORE, **kwargs)
    assert needle in str(e.value)


def test_store_value_must_fit_pointer():
    with pytest.raises(ValueError, match=r"store data pointer must be an int in \[0, 2\*\*32\)"):
        OwnedComponentInstance(SAMPLE, (2**32, 0), ptr=4)


def test_host_address_cannot_be_overridden():
    if sys.byteorder != "little" or HostPtr != 8:
        pytest.skip("written for a 64-bit little-endian host")
    with pytest.raises(ValueError, match="real address"):
        OwnedComponentInstance(SAMPLE, STORE, address=0x1000)


# -- getters and setters ------------------------------------------------

SETTERS = [
    ("set_runtime_memory", "runtime_memory", lambda inst, i, v: inst.set_runtime_memory(i, v)),
    ("set_runtime_realloc", "runtime_realloc", lambda inst, i, v: inst.set_runtime_realloc(i, v)),
    ("set_runtime_post_return", "runtime_post_return", lambda inst, i, v: inst.set_runtime_post_return(i, v)),
    ("set_lowering", "lowering", lambda inst, i, v: inst.set_lowering(i, VMLowering(v, v + 8), v + 16, 7)),
    ("set_always_trap", "always_trap_anyfunc", lambda inst, i, v: inst.set_always_trap(i, v, 7)),
]


@pytest.mark.parametrize("ptr, byte_order", [(4, "little"), (8, "big"), (HostPtr, sys.byteorder)])
@pytest.mark.parametrize("setter, getter, call", SETTERS, ids=[s[0] for s in SETTERS])
def test_read_before_set_and_set_twice_raise_in_debug(ptr, byte_order, setter, getter, call):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=ptr, byte_order=byte_order)
    with pytest.raises(VMContextError, match=rf"^{getter}\(1\): .* read before it was set"):
        getattr(inst, getter)(1)
    call(inst, 1, 0x1000)
    getattr(inst, getter)(1)
    with pytest.raises(VMContextError, match=rf"^{setter}\(1\): .* can be set once only"):
        call(inst, 1, 0x2000)
    with pytest.raises(VMContextError, match=rf"^{getter}\(0\): "):
        getattr(inst, getter)(0)


@pytest.mark.parametrize("setter, getter, call", SETTERS, ids=[s[0] for s in SETTERS])
def test_release_build_has_no_poison_and_no_checks(setter, getter, call):
    inst = OwnedComponentInstance(SAMPLE, STORE, debug_assertions=False)
    getattr(inst, getter)(1)  # zeros, unchecked
    call(inst, 1, 0x1000)
    call(inst, 1, 0x2000)  # second set allowed, like a release build
    if getter == "lowering":
        assert inst.lowering(1) == VMLowering(0x2000, 0x2008)
    elif getter != "always_trap_anyfunc":
        assert getattr(inst, getter)(1) == 0x2000


def test_set_runtime_memory_null_raises_in_debug_only():
    with pytest.raises(VMContextError, match=r"set_runtime_memory\(0\): the memory pointer must be non-null"):
        OwnedComponentInstance(SAMPLE, STORE).set_runtime_memory(0, 0)
    release = OwnedComponentInstance(SAMPLE, STORE, debug_assertions=False)
    release.set_runtime_memory(0, 0)
    assert release.runtime_memory(0) == 0


def test_set_lowering_writes_record_and_anyfunc_with_own_vmctx():
    inst = OwnedComponentInstance(SAMPLE, STORE)
    inst.set_lowering(2, VMLowering(0xAAA0, 0xBBB0), 0xCCC0, 42)
    assert inst.lowering(2) == VMLowering(0xAAA0, 0xBBB0)
    slot = inst.lowering_anyfunc(2)
    assert slot == inst.vmctx + inst.offsets.lowering_anyfunc(2)
    rec = inst.view("lowering_anyfuncs")[2]
    assert (rec["func_ptr"], rec["type_index"], rec["vmctx"]) == (0xCCC0, 42, inst.vmctx)
    assert inst.view("lowerings")[2].tolist() == (0xAAA0, 0xBBB0)


def test_store_getter():
    assert OwnedComponentInstance(SAMPLE, STORE).store() == STORE
    for debug in (True, False):
        with pytest.raises(VMContextError, match=r"store\(\): the store pointer at offset \d+ is null"):
            OwnedComponentInstance(SAMPLE, debug_assertions=debug).store()


@pytest.mark.parametrize("method, args", [
    ("runtime_memory", (2,)), ("set_runtime_memory", (2, 1)), ("lowering", (3,)),
    ("set_lowering", (3, VMLowering(1, 1), 1, 1)), ("always_trap_anyfunc", (2,)),
    ("set_always_trap", (2, 1, 1)), ("instance_flags", (2,)), ("runtime_realloc", (-1,)),
])
def test_index_errors(method, args):
    with pytest.raises(IndexError, match=r"index -?\d+ out of range \(num_"):
        getattr(OwnedComponentInstance(SAMPLE, STORE), method)(*args)


# -- InstanceFlags --------------------------------------------------------

@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_instance_flags_flip_one_bit_in_place(byte_order):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=8, byte_order=byte_order)
    flags = inst.instance_flags(1)
    assert (flags.may_leave, flags.may_enter, flags.needs_post_return) == (True, True, False)
    flags.needs_post_return = True
    flags.may_enter = False
    assert flags.value == FLAG_MAY_LEAVE | FLAG_NEEDS_POST_RETURN
    off = inst.offsets.instance_flags(1)
    assert inst.to_bytes()[off : off + 16] == (5).to_bytes(4, byte_order) + bytes(12)
    assert inst.instance_flags(0).value == 3  # the neighbour is untouched
    flags.value = -1
    assert flags.may_leave and flags.may_enter and flags.needs_post_return
    flags.may_leave = False
    assert flags.value == -2
    assert flags.as_raw() == inst.vmctx + off
    with pytest.raises(ValueError, match="flag word must be an i32"):
        flags.value = 2**31


# -- numpy views ------------------------------------------------------------

@pytest.mark.parametrize("ptr, byte_order", [(4, "little"), (4, "big"), (8, "little"), (8, "big")])
def test_views_are_zero_copy_with_target_dtypes(ptr, byte_order):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=ptr, byte_order=byte_order)
    flags = inst.view("flags")
    assert flags.dtype == np.dtype(("<" if byte_order == "little" else ">") + "i4")
    assert flags.strides == (16,) and flags.tolist() == [3, 3]
    flags[0] = 1
    assert inst.instance_flags(0).value == 1 and not inst.instance_flags(0).may_enter
    mems = inst.view("memories")
    assert mems.dtype.itemsize == ptr and mems.tolist() == [invalid_ptr(ptr)] * 2
    anyfuncs = inst.view("always_trap_anyfuncs")
    assert anyfuncs.dtype.names == ("func_ptr", "type_index", "vmctx") and anyfuncs.dtype.itemsize == 3 * ptr
    inst.set_always_trap(1, 0xF00, 5)
    assert anyfuncs[1].tolist() == (0xF00, 5, inst.vmctx)
    mems[1] = 0x1234  # a write through the view is a write to the memory
    assert inst.runtime_memory(1) == 0x1234
    assert np.shares_memory(mems, np.frombuffer(inst.memory, np.uint8))
    with pytest.raises(KeyError, match="no region named 'bogus'"):
        inst.view("bogus")


# -- close --------------------------------------------------------------------

def test_use_after_close_raises_value_error_and_views_stay_valid():
    inst = OwnedComponentInstance(SAMPLE, STORE)
    view = inst.view("flags")
    flags = inst.instance_flags(0)
    address = inst.vmctx
    inst.close()
    inst.close()  # idempotent
    for call in (lambda: inst.memory, inst.to_bytes, inst.store, lambda: inst.runtime_memory(0),
                 lambda: inst.set_runtime_memory(0, 1), lambda: inst.view("flags"),
                 lambda: flags.may_enter, lambda: setattr(flags, "may_leave", False),
                 lambda: inst.lowering(0), lambda: inst.instance_flags(0).value):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert view.tolist() == [3, 3]  # the view keeps its memory alive
    with pytest.raises(VMContextError, match="not the address of a live"):
        VMComponentContext.from_opaque(address)


def test_context_manager_closes():
    with OwnedComponentInstance(SAMPLE, STORE) as inst:
        assert VMComponentContext.from_opaque(inst.vmctx) is inst
    assert inst.closed


# -- from_opaque ----------------------------------------------------------------

@pytest.mark.parametrize("ptr, byte_order", [(4, "big"), (8, "little"), (HostPtr, sys.byteorder)])
def test_from_opaque_good(ptr, byte_order):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=ptr, byte_order=byte_order)
    assert VMComponentContext.from_opaque(inst.vmctx) is inst


@pytest.mark.parametrize("first4, byte_order, needle", [
    (b"core", "little", "a core module's VMContext magic ('core')"),
    (b"eroc", "big", "a core module's VMContext magic ('core')"),
    (bytes(4), "little", "all zeros"),
    (b"\xef\xbe\xef\xbe", "little", "INVALID_PTR debug poison pattern"),
    (b"\xde\xad\xde\xad", "big", "INVALID_PTR debug poison pattern"),
    (b"pmoc", "little", "the component magic in big-endian byte order"),
    (b"\x01\x02\x03\x04", "little", "found bytes 01 02 03 04"),
])
def test_from_opaque_corrupted_magic(first4, byte_order, needle):
    inst = OwnedComponentInstance(SAMPLE, STORE, ptr=8, byte_order=byte_order)
    inst.memory[:4] = first4
    with pytest.raises(VMContextError) as e:
        VMComponentContext.from_opaque(inst.vmctx)
    msg = str(e.value)
    assert needle in msg and "expected VMCOMPONENT_MAGIC 0x706d6f63" in msg
    assert " ".join(f"{b:02x}" for b in first4) in msg


def test_from_opaque_foreign_and_interior_addresses_are_never_read():
    foreign = ctypes.create_string_buffer(b"comp" + bytes(60))
    with pytest.raises(VMContextError, match="not the address of a live emulated VMComponentContext"):
        VMComponentContext.from_opaque(ctypes.addressof(foreign))
    with pytest.raises(VMContextError, match="not the address of a live"):
        VMComponentContext.from_opaque(8)  # would segfault if dereferenced
    inst = OwnedComponentInstance(SAMPLE, STORE)
    with pytest.raises(VMContextError, match=r"lies at offset 16 inside the context at"):
        VMComponentContext.from_opaque(inst.vmctx + 16)


# -- round trips ------------------------------------------------------------

shapes = st.builds(Component, **{n: st.integers(0, 6) for n in COUNT_NAMES})


@settings(max_examples=150, deadline=None)
@given(shape=shapes, target=st.sampled_from([(4, "little"), (4, "big"), (8, "little"), (8, "big")]),
       data=st.data())
def test_setters_then_getters_round_trip(shape, target, data):
    ptr, byte_order = target
    pointers = st.integers(1, 2 ** (8 * ptr) - 1).filter(lambda v: v != invalid_ptr(ptr))
    inst = OwnedComponentInstance(shape, STORE, ptr=ptr, byte_order=byte_order)
    o = inst.offsets
    expect = {}
    for i in range(o.num_runtime_memories):
        expect[("runtime_memory", i)] = v = data.draw(pointers)
        inst.set_runtime_memory(i, v)
    for i in range(o.num_runtime_reallocs):
        expect[("runtime_realloc", i)] = v = data.draw(pointers)
        inst.set_runtime_realloc(i, v)
    for i in range(o.num_runtime_post_returns):
        expect[("runtime_post_return", i)] = v = data.draw(pointers)
        inst.set_runtime_post_return(i, v)
    for i in range(o.num_lowerings):
        low = VMLowering(data.draw(pointers), data.draw(pointers))
        fp, ti = data.draw(pointers), data.draw(st.integers(0, 2**32 - 1))
        inst.set_lowering(i, low, fp, ti)
        expect[("lowering", i)] = low
        expect[("lowering_anyfunc", i)] = (fp, ti, inst.vmctx)
    for i in range(o.num_always_trap):
        fp, ti = data.draw(pointers), data.draw(st.integers(0, 2**32 - 1))
        inst.set_always_trap(i, fp, ti)
        expect[("always_trap_anyfunc", i)] = (fp, ti, inst.vmctx)
    for i in range(o.num_runtime_component_instances):
        word = data.draw(st.integers(-(2**31), 2**31 - 1))
        inst.instance_flags(i).value = word
        expect[("instance_flags", i)] = word
    views = {"lowering_anyfunc": inst.view("lowering_anyfuncs"),
             "always_trap_anyfunc": inst.view("always_trap_anyfuncs")}
    for (getter, i), value in expect.items():
        if getter in views:
            assert getattr(inst, getter)(i) == inst.vmctx + getattr(o, getter)(i)
            assert views[getter][i].tolist() == value
        elif getter == "instance_flags":
            assert inst.instance_flags(i).value == value == inst.view("flags")[i]
        else:
            assert getattr(inst, getter)(i) == value
    assert inst.store() == STORE
    assert VMComponentContext.from_opaque(inst.vmctx) is inst
