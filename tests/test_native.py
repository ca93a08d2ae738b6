"""C code as compiled code would use the context: loads, stores and calls through its memory."""

import pytest

from vmctx_emu import (
    FLAG_MAY_ENTER,
    FLAG_MAY_LEAVE,
    FLAG_NEEDS_POST_RETURN,
    VMCOMPONENT_MAGIC,
    Component,
    HostPtr,
    OwnedComponentInstance,
    VMComponentOffsets,
    VMLowering,
)
from vmctx_emu.memory.native import c_alloc_init, ffi, lib

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


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "release"])
@pytest.mark.parametrize("component", [SAMPLE, Component(), Component(num_lowerings=1000, num_always_trap=7,
                                                                      num_runtime_component_instances=9)])
def test_c_initializer_produces_the_same_bytes(component, debug):
    offsets = VMComponentOffsets(HostPtr, component)
    c_mem = c_alloc_init(offsets, STORE, debug)
    with OwnedComponentInstance(component, STORE, debug_assertions=debug) as inst:
        assert ffi.buffer(c_mem, offsets.size_of_vmctx())[:] == inst.to_bytes()
