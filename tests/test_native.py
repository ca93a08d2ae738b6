"""C code as compiled code would use the context: loads, stores and calls through its memory."""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import (
    ArgumentTypeError,
    ArgumentValueError,
    FLAG_MAY_ENTER,
    FLAG_MAY_LEAVE,
    FLAG_NEEDS_POST_RETURN,
    VMCOMPONENT_MAGIC,
    Component,
    HostPtr,
    InvalidPtrSizeError,
    OwnedComponentInstance,
    VMComponentOffsets,
    VMCtxEmuError,
    VMLowering,
)
from vmctx_emu.layouts.releases import LAYOUTS
from vmctx_emu.memory.initializer import Fill, fills_for
from vmctx_emu.memory.native import c_alloc_fills, c_alloc_init, c_fill_argv, c_initializer_argv, ffi, lib

SAMPLE = Component(num_lowerings=3, num_runtime_memories=1, num_runtime_reallocs=1,
                   num_runtime_post_returns=1, num_runtime_component_instances=2, num_always_trap=1)
STORE = (0x1000, 0x2000)


@pytest.fixture
def inst():
    with OwnedComponentInstance(SAMPLE, STORE) as i:
        yield i


def vp(address):
    return ffi.cast("void *", address)


def test_host_pointer_size_agrees():
    assert lib.vmctx_host_pointer_size() == HostPtr


def test_c_reads_magic_and_python_writes(inst):
    assert lib.vmctx_load_magic(vp(inst.vmctx)) == VMCOMPONENT_MAGIC
    off = inst.offsets.instance_flags(1)
    inst.instance_flags(1).may_enter = False
    assert lib.vmctx_flags_load(vp(inst.vmctx), off) == FLAG_MAY_LEAVE
    assert not lib.vmctx_flags_test(vp(inst.vmctx), off, FLAG_MAY_ENTER)
    inst.set_runtime_memory(0, 0xABCDEF0)
    assert lib.vmctx_load_ptr(vp(inst.vmctx), inst.offsets.runtime_memory(0)) == 0xABCDEF0


def test_python_reads_c_writes_through_api_and_views(inst):
    off = inst.offsets.instance_flags(0)
    lib.vmctx_flags_set(vp(inst.vmctx), off, FLAG_NEEDS_POST_RETURN)
    lib.vmctx_flags_clear(vp(inst.vmctx), off, FLAG_MAY_LEAVE)
    flags = inst.instance_flags(0)
    assert (flags.may_leave, flags.may_enter, flags.needs_post_return) == (False, True, True)
    assert inst.view("flags")[0] == FLAG_MAY_ENTER | FLAG_NEEDS_POST_RETURN
    lib.vmctx_store_ptr(vp(inst.vmctx), inst.offsets.runtime_realloc(0), 0x5150)
    assert inst.runtime_realloc(0) == 0x5150 and inst.view("reallocs")[0] == 0x5150


def test_c_reads_anyfunc_fields(inst):
    inst.set_lowering(1, VMLowering(0x10, 0x20), 0x30, 77)
    inst.set_always_trap(0, 0x40, 88)
    out = ffi.new("vmctx_anyfunc *")
    lib.vmctx_load_anyfunc(vp(inst.vmctx), inst.offsets.lowering_anyfunc(1), out)
    assert (out.func_ptr, out.type_index, out.vmctx) == (0x30, 77, inst.vmctx)
    lib.vmctx_load_anyfunc(vp(inst.vmctx), inst.offsets.always_trap_anyfunc(0), out)
    assert (out.func_ptr, out.type_index, out.vmctx) == (0x40, 88, inst.vmctx)


def call_lowering(inst, index, flags_index, nargs=5, encoding=1):
    args = ffi.new("vmctx_val_raw[]", nargs)
    lib.vmctx_call_lowering(vp(inst.vmctx), inst.offsets.lowering(index), inst.offsets.instance_flags(flags_index),
                            ffi.NULL, ffi.NULL, encoding, args, nargs)
    return args


def test_c_calls_a_c_callee_through_the_context(inst):
    data = ffi.new("char[]", b"host data")
    inst.set_lowering(2, VMLowering(lib.vmctx_echo_callee_address(), int(ffi.cast("uintptr_t", data))), 0x99, 1)
    args = call_lowering(inst, 2, flags_index=1, encoding=2)
    assert args[0].i64 == inst.vmctx
    assert args[1].i64 == int(ffi.cast("uintptr_t", data))
    assert args[2].i32 == FLAG_MAY_ENTER | FLAG_MAY_LEAVE
    assert (args[3].i32, args[4].i64) == (2, 5)
    # The callee set NEEDS_POST_RETURN through the flags pointer it was handed.
    assert inst.instance_flags(1).needs_post_return and not inst.instance_flags(0).needs_post_return


def test_c_calls_a_python_callback_through_the_context(inst):
    seen = []

    @ffi.callback("void(void *, void *, void *, void *, void *, uint8_t, vmctx_val_raw *, size_t)")
    def callee(vmctx, data, flags, memory, realloc, encoding, args, nargs):
        seen.append((int(ffi.cast("uintptr_t", vmctx)), int(ffi.cast("uintptr_t", data)),
                     int(ffi.cast("uintptr_t", flags)), encoding, nargs, args[0].i32))
        args[0].i32 = args[0].i32 * 2

    callee_ptr = int(ffi.cast("uintptr_t", callee))
    inst.set_lowering(0, VMLowering(callee_ptr, 0xDA7A), 0x77, 3)
    args = ffi.new("vmctx_val_raw[]", 1)
    args[0].i32 = 21
    lib.vmctx_call_lowering(vp(inst.vmctx), inst.offsets.lowering(0), inst.offsets.instance_flags(0),
                            ffi.NULL, ffi.NULL, 0, args, 1)
    assert seen == [(inst.vmctx, 0xDA7A, inst.instance_flags(0).as_raw(), 0, 1, 21)]
    assert args[0].i32 == 42


# -- the C initializer: one plan per release, shared with Python ----------------

HOST = lib.vmctx_host_pointer_size()
U32_MAX = (1 << 32) - 1


def c_bytes(mem, offsets):
    return ffi.buffer(mem, offsets.size_of_vmctx())[:]


def version_of(layout):
    return "seed" if layout.id == "seed" else layout.first


def header_for(layout):
    """A distinct value for every header pointer the release writes."""
    return {name: (0x1000 + 32 * i, 0x2000 + 32 * i) if name == "store" else 0x3000 + 32 * i
            for i, name in enumerate(layout.header_names())}


SHAPES = {
    "empty": lambda names: {},
    "ones": lambda names: {n: 1 for n in names},
    "mixed": lambda names: {n: 0 if i % 2 else 2 + i for i, n in enumerate(names)},
    "large": lambda names: {n: 65_537 + 7 * i for i, n in enumerate(names)},
}


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "release"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: f"{layout.id}-{version_of(layout)}")
def test_c_initializer_matches_python_for_every_release(layout, shape, debug):
    counts = SHAPES[shape](layout.count_names)
    offsets = layout.offsets(HostPtr, **counts)
    header = header_for(layout)
    c_mem = c_alloc_init(offsets, header=header, debug_assertions=debug)
    with OwnedComponentInstance(counts, wasmtime=version_of(layout), header=header,
                                debug_assertions=debug) as inst:
        assert c_bytes(c_mem, offsets) == inst.to_bytes()


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: f"{layout.id}-{version_of(layout)}")
def test_c_initializer_writes_every_header_magic_and_flag(layout):
    """A witness independent of the shared plan: read the declared spots of the C bytes directly."""
    offsets = layout.offsets(HostPtr, num_runtime_component_instances=3)
    header = header_for(layout)
    data = c_bytes(c_alloc_init(offsets, header=header), offsets)

    def word(at, width):
        return int.from_bytes(data[at:at + width], sys.byteorder)

    assert word(0, 4) == VMCOMPONENT_MAGIC
    for field in layout.declared_fields():
        name = field.header_name()
        if name == "store":
            at = offsets.region("store").offset
            assert (word(at, HOST), word(at + HOST, HOST)) == header["store"]
        elif name:
            assert word(offsets.region(field.name).offset, HOST) == header[name], name
    flags = layout.flags_field()
    region = offsets.region(flags.name)
    assert [word(region.offset + i * region.elem_size, 4) for i in range(3)] == [dict(flags.init)["flags"]] * 3


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "release"])
@pytest.mark.parametrize("component", [SAMPLE, Component(), Component(num_lowerings=1000, num_always_trap=7,
                                                                      num_runtime_component_instances=9)])
def test_c_initializer_produces_the_same_bytes(component, debug):
    offsets = VMComponentOffsets(HostPtr, component)
    c_mem = c_alloc_init(offsets, STORE, debug_assertions=debug)
    with OwnedComponentInstance(component, STORE, debug_assertions=debug) as inst:
        assert c_bytes(c_mem, offsets) == inst.to_bytes()


def test_seed_defaults_to_a_null_store_like_python():
    offsets = VMComponentOffsets(HostPtr, SAMPLE)
    with OwnedComponentInstance(SAMPLE) as inst:
        assert c_bytes(c_alloc_init(offsets), offsets) == inst.to_bytes()


@pytest.mark.parametrize("layout", [layout for layout in LAYOUTS if 4 in layout.valid_ptr_sizes and HOST != 4],
                         ids=lambda layout: f"{layout.id}-{version_of(layout)}")
def test_pointer_size_4_is_refused_not_overflowed(layout):
    # Once a segfault: 8-byte words into a buffer sized for 4-byte pointers.
    offsets = layout.offsets(4, **{n: 4000 for n in layout.count_names})
    with pytest.raises(ArgumentValueError, match=r"pointer size 4.* host pointers of 8 bytes"):
        c_alloc_init(offsets, header=header_for(layout))


def test_the_original_overflow_is_refused():
    with pytest.raises(ArgumentValueError, match="pointer size 4"):
        c_alloc_init(VMComponentOffsets(4, Component(num_runtime_post_returns=4000)))


def test_c_initializer_refuses_what_it_cannot_write():
    offsets = VMComponentOffsets(HostPtr, SAMPLE)
    other = "big" if sys.byteorder == "little" else "little"
    with pytest.raises(ArgumentValueError, match=f"byte_order '{other}' is not the host's"):
        c_alloc_init(offsets, byte_order=other)
    with pytest.raises(ArgumentValueError, match="byte_order must be"):
        c_alloc_init(offsets, byte_order="middle")
    with pytest.raises(ArgumentTypeError, match="offsets must be a VMComponentOffsets"):
        c_alloc_init(SAMPLE)
    with pytest.raises(ArgumentTypeError, match="debug_assertions must be a bool"):
        c_alloc_init(offsets, debug_assertions=1)
    l1 = LAYOUTS[1]
    with pytest.raises(ArgumentValueError, match="header value missing for limits"):
        c_alloc_init(l1.offsets(HostPtr), (1, 2))
    with pytest.raises(ArgumentValueError, match="header bogus is not written"):
        c_alloc_init(offsets, header={"bogus": 1})
    with pytest.raises(ArgumentValueError, match=r"store data pointer must be an int in \[0, 2\*\*"):
        c_alloc_init(offsets, (1 << (8 * HOST), 0))


def test_c_refusals_become_package_errors_naming_field_value_and_bound():
    def refused(size, fill, match, ptr_size=HOST):
        with pytest.raises(ArgumentValueError, match=match):
            c_alloc_fills(size, [Fill("ok", "x", 0, 1, 4, 4, 1), fill], ptr_size=ptr_size)

    refused(64, Fill("lowerings", "data", 40, 3, 16, HOST, 1),
            rf"fill 1 \(lowerings.data\): offset 40 \+ \(count 3 - 1\) \* stride 16 \+ width {HOST} = "
            rf"{72 + HOST} exceeds the context's size 64")
    refused(64, Fill("magic", "magic", 0, 1, 4, 4, 1 << 32), r"fill 1 \(magic.magic\): value 0x100000000 does not fit "
            r"its width of 4 bytes \(max 0xffffffff\)")
    refused(64, Fill("f", "s", 0, 1, 4, 2, 0), rf"fill 1 \(f.s\): width 2 is neither 4 nor the host pointer size {HOST}")
    refused(64, Fill("f", "s", 0, 1, 4, 4, 0), rf"ptr_size 4 is not the host pointer size {HOST}", ptr_size=4)
    refused(64, Fill("f", "s", U32_MAX + 1, 1, 4, 4, 0), r"fill 1 \(f.s\): offset must be in \[0, 0x100000000\), got 4294967296")
    with pytest.raises(ArgumentTypeError, match="fill 0 must be a Fill"):
        c_alloc_fills(64, [(0, 1, 4, 4, 1)])
    with pytest.raises(ArgumentValueError, match=r"size must be in \[0, 2\*\*32\) \(a u32\), got 4294967296"):
        c_alloc_fills(1 << 32, [])
    # Empty plans and count-0 fills are fine; an i32 -1 is written as its two's complement.
    assert ffi.buffer(c_alloc_fills(8, []), 8)[:] == bytes(8)
    mem = c_alloc_fills(8, [Fill("f", "s", 100, 0, 4, 4, 7), Fill("f", "i32", 4, 1, 4, 4, -1)])
    assert ffi.buffer(mem, 8)[:] == bytes(4) + b"\xff" * 4


def test_argv_renders_the_same_plan():
    offsets = VMComponentOffsets(HostPtr, SAMPLE)
    fills = fills_for(offsets, STORE)
    argv = c_initializer_argv(offsets, STORE)
    assert argv[:2] == [str(offsets.size_of_vmctx()), str(HOST)]
    assert argv[2:] == c_fill_argv(fills)
    parsed = [Fill(f.field, f.sub, *(int(x, 0) for x in item.split(":"))) for f, item in zip(fills, argv[2:])]
    assert parsed == fills
    with pytest.raises(ArgumentValueError, match="pointer size 4"):
        c_initializer_argv(VMComponentOffsets(4, SAMPLE))


# -- the raw C API checks every fill it is given --------------------------------

OK, NO_MEMORY, BAD_PTR, NULL_FILLS, BAD_WIDTH, OUT_OF_BOUNDS, BAD_VALUE = (
    lib.VMCTX_INIT_OK, lib.VMCTX_INIT_NO_MEMORY, lib.VMCTX_INIT_BAD_PTR_SIZE, lib.VMCTX_INIT_NULL_FILLS,
    lib.VMCTX_INIT_BAD_WIDTH, lib.VMCTX_INIT_OUT_OF_BOUNDS, lib.VMCTX_INIT_BAD_VALUE)
NO_INDEX = ffi.cast("size_t", -1)


def raw_init(size, fills, ptr_size=HOST, nfills=None, null_fills=False):
    """Call `vmctx_c_alloc_init` directly: (error, bad index, bytes or None)."""
    array = ffi.NULL if null_fills else ffi.new("vmctx_c_fill[]", [list(f) for f in fills])
    error, bad = ffi.new("int *", -1), ffi.new("size_t *", 12345)
    ptr = lib.vmctx_c_alloc_init(size, ptr_size, array, len(fills) if nfills is None else nfills, error, bad)
    if ptr == ffi.NULL:
        return error[0], bad[0], None
    try:
        return error[0], bad[0], ffi.buffer(ptr, size)[:]
    finally:
        lib.vmctx_c_free(ptr)


def model(size, fills):
    """What the C must do, with Python's unbounded ints: the first bad fill, else the bytes."""
    for i, (offset, count, stride, width, value) in enumerate(fills):
        if width not in (4, HOST):
            return BAD_WIDTH, i, None
        if value >> (8 * width):
            return BAD_VALUE, i, None
        if count and offset + (count - 1) * stride + width > size:
            return OUT_OF_BOUNDS, i, None
    buf = bytearray(size)
    for offset, count, stride, width, value in fills:
        for k in range(count):
            at = offset + k * stride
            buf[at:at + width] = value.to_bytes(width, sys.byteorder)
    return OK, int(NO_INDEX), bytes(buf)


def test_raw_api_edges():
    assert raw_init(16, [], ptr_size=4 if HOST == 8 else 8) == (BAD_PTR, int(NO_INDEX), None)
    assert raw_init(16, [(0, 1, 0, 4, 1)], null_fills=True) == (NULL_FILLS, int(NO_INDEX), None)
    assert raw_init(16, [], null_fills=True) == (OK, int(NO_INDEX), bytes(16))
    # Every product and sum at the u32 edges stays out of bounds instead of wrapping.
    for fill in [(U32_MAX, U32_MAX, U32_MAX, HOST, 0), (0, U32_MAX, U32_MAX, 4, 0), (U32_MAX, 1, 0, 4, 0),
                 (0, 2, U32_MAX, 4, 0), (U32_MAX - 3, 1, 0, 4, 0), (0, 1 << 31, 2, 4, 0), (13, 1, 0, 4, 0)]:
        assert raw_init(16, [(0, 1, 0, 4, 1), fill]) == (OUT_OF_BOUNDS, 1, None), fill
    assert raw_init(16, [(12, 1, 0, 4, 0xFFFFFFFF)])[2] == bytes(12) + b"\xff" * 4
    # error and bad_fill may be NULL.
    ptr = lib.vmctx_c_alloc_init(16, HOST, ffi.NULL, 0, ffi.NULL, ffi.NULL)
    assert ptr != ffi.NULL
    lib.vmctx_c_free(ptr)
    assert lib.vmctx_c_alloc_init(16, HOST, ffi.NULL, 1, ffi.NULL, ffi.NULL) == ffi.NULL


EDGE_U32 = st.integers(U32_MAX - 64, U32_MAX)
ANY_U32 = st.one_of(st.integers(0, 64), EDGE_U32, st.integers(0, U32_MAX))


@st.composite
def raw_fill(draw, size):
    """An in-bounds fill, one ending exactly at or just past the end, or anything at all."""
    mode = draw(st.sampled_from(["inside", "inside", "edge", "wild"]))
    width = draw(st.sampled_from([4, HOST]))
    value = draw(st.integers(0, (1 << (8 * width)) - 1))
    stride = draw(st.integers(0, 64))
    if mode == "wild":
        width = draw(st.sampled_from([4, HOST, 0, 1, 2, 3, 16, U32_MAX]))
        value = draw(st.one_of(st.integers(0, (1 << (8 * min(width, 8))) - 1), st.integers(0, (1 << 64) - 1)))
        offset, stride, count = draw(ANY_U32), draw(ANY_U32), draw(ANY_U32)
        if stride == 0:
            count = min(count, 64)  # an in-bounds stride-0 fill rewrites one word `count` times
        return offset, count, stride, width, value
    if size < width:
        return draw(st.integers(0, size)), draw(st.integers(0, 3)), stride, width, value
    offset = draw(st.integers(0, size - width))
    room = size - width - offset
    most = 64 if stride == 0 else room // stride + 1
    if mode == "inside":
        return offset, draw(st.integers(0, most)), stride, width, value
    # edge: the last word ends exactly at `size`, or one byte past it.
    count = draw(st.integers(1, most))
    return size - width - (count - 1) * stride + draw(st.integers(0, 1)), count, stride, width, value


@st.composite
def raw_fills(draw):
    size = draw(st.integers(0, 512))
    return size, draw(st.lists(raw_fill(size), max_size=6))


@settings(max_examples=400, deadline=None)
@given(raw_fills())
def test_raw_fills_never_reach_outside_the_buffer(case):
    """Out-of-bounds, overflowing or ill-formed fills are refused before anything is written."""
    size, fills = case
    assert raw_init(size, fills) == model(size, fills)


@st.composite
def c_targets(draw):
    """Any release, pointer size, byte order and counts (some large), as a caller might pass them."""
    layout = draw(st.sampled_from(LAYOUTS))
    counts = {n: draw(st.one_of(st.integers(0, 3), st.integers(3990, 4010))) for n in layout.count_names
              if draw(st.booleans())}
    if draw(st.booleans()):
        ptr, order = HOST, sys.byteorder
    else:
        ptr = draw(st.sampled_from([4, 8, 1, 2, 16]))
        order = draw(st.sampled_from(["little", "big"]))
    return layout, counts, ptr, order, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(c_targets())
def test_c_alloc_init_is_python_byte_for_byte_or_a_clean_refusal(target):
    """Once `c_alloc_init(VMComponentOffsets(4, Component(num_runtime_post_returns=4000)))` overflowed the heap."""
    layout, counts, ptr, order, debug = target
    try:
        offsets = layout.offsets(ptr, **counts)
    except VMCtxEmuError:
        return  # a pointer size the release cannot lay out: refused before C is reached
    header = header_for(layout)
    if ptr != HOST or order != sys.byteorder:
        with pytest.raises(ArgumentValueError, match="pointer size|byte_order"):
            c_alloc_init(offsets, header=header, debug_assertions=debug, byte_order=order)
        return
    c_mem = c_alloc_init(offsets, header=header, debug_assertions=debug, byte_order=order)
    with OwnedComponentInstance(counts, wasmtime=version_of(layout), header=header, debug_assertions=debug) as inst:
        assert c_bytes(c_mem, offsets) == inst.to_bytes()


@pytest.mark.parametrize("ptr_size, error", [(3, InvalidPtrSizeError), ("8", InvalidPtrSizeError),
                                             (None, InvalidPtrSizeError), (4 if HOST == 8 else 8, ArgumentValueError)])
def test_c_alloc_fills_checks_the_pointer_size_it_is_given(ptr_size, error):
    with pytest.raises(error, match="pointer size|ptr_size"):
        c_alloc_fills(16, [Fill("magic", "magic", 0, 1, 4, 4, 1)], ptr_size=ptr_size)


def test_c_fill_argv_refuses_what_c_would():
    with pytest.raises(ArgumentTypeError, match="fill 0 must be a Fill"):
        c_fill_argv([(0, 1, 4, 4, 1)])
    with pytest.raises(ArgumentValueError, match=r"fill 0 \(f.s\): count must be in \[0, 0x100000000\), got -1"):
        c_fill_argv([Fill("f", "s", 0, -1, 4, 4, 1)])


@pytest.mark.parametrize("call", [lambda: c_alloc_fills(16, 5), lambda: c_fill_argv(None)])
def test_fills_must_be_iterable(call):
    with pytest.raises(ArgumentTypeError, match="fills must be an iterable of Fill"):
        call()
