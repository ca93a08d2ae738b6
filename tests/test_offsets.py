"""Known offsets worked out by hand from `vmcomponent_offsets.rs` (seed), and the error mapping."""

import pytest

from vmctx_emu import (
    Component,
    ComponentValueError,
    HostPtr,
    InvalidPtrSizeError,
    LayoutOverflowError,
    PtrSize,
    VMComponentOffsets,
    invalid_ptr,
    size_of_vmcaller_checked_anyfunc,
    size_of_vmglobal_definition,
    vmcaller_checked_anyfunc_func_ptr,
    vmcaller_checked_anyfunc_type_index,
    vmcaller_checked_anyfunc_vmctx,
)

from conftest import SAMPLE  # (3 lowerings, 1 memory, realloc, post-return, always-trap; 2 instances)

# Each row: (ptr, component, {method or (method, index): expected}).
# Derivation, following the `fields!` list step by step:
KNOWN = [
    # ptr 8, SAMPLE: magic 0..4; align(8) -> 8; store 8..24 (2*8); align(16) -> 32;
    # flags 32..64 (2*16); align(8) -> 64; lowering_anyfuncs 64..136 (3*24);
    # always_trap_anyfuncs 136..160 (1*24); lowerings 160..208 (3*16);
    # memories 208..216; reallocs 216..224; post_returns 224..232.
    (8, SAMPLE, {
        "magic": 0, "store": 8, ("instance_flags", 0): 32, ("instance_flags", 1): 48,
        "lowering_anyfuncs": 64, ("lowering_anyfunc", 2): 112,
        "always_trap_anyfuncs": 136, ("always_trap_anyfunc", 0): 136,
        "lowerings": 160, ("lowering", 2): 192, ("lowering_callee", 2): 192,
        ("lowering_data", 2): 200, "lowering_size": 16, "lowering_callee_offset": 0,
        "lowering_data_offset": 8, "runtime_memories": 208, ("runtime_memory", 0): 208,
        "runtime_reallocs": 216, ("runtime_realloc", 0): 216,
        "runtime_post_returns": 224, ("runtime_post_return", 0): 224,
        "size_of_vmctx": 232, "pointer_size": 8,
    }),
    # ptr 4, SAMPLE: magic 0..4; align(4) -> 4; store 4..12 (2*4); align(16) -> 16;
    # flags 16..48; align(4) -> 48; lowering_anyfuncs 48..84 (3*12);
    # always_trap_anyfuncs 84..96 (12); lowerings 96..120 (3*8);
    # memories 120..124; reallocs 124..128; post_returns 128..132.
    (4, SAMPLE, {
        "magic": 0, "store": 4, ("instance_flags", 0): 16, ("instance_flags", 1): 32,
        "lowering_anyfuncs": 48, ("lowering_anyfunc", 1): 60, ("lowering_anyfunc", 2): 72,
        "always_trap_anyfuncs": 84, ("always_trap_anyfunc", 0): 84,
        "lowerings": 96, ("lowering", 1): 104, ("lowering_callee", 2): 112,
        ("lowering_data", 2): 116, "lowering_size": 8, "lowering_data_offset": 4,
        "runtime_memories": 120, "runtime_reallocs": 124, "runtime_post_returns": 128,
        ("runtime_post_return", 0): 128, "size_of_vmctx": 132, "pointer_size": 4,
    }),
    # ptr 8, empty: store 8..24, align(16) -> 32; every array starts and ends at 32.
    (8, Component(), {
        "store": 8, "lowering_anyfuncs": 32, "lowerings": 32, "runtime_post_returns": 32,
        "size_of_vmctx": 32,
    }),
    # ptr 4, empty: store 4..12, align(16) -> 16.
    (4, Component(), {"store": 4, "lowering_anyfuncs": 16, "size_of_vmctx": 16}),
    # ptr 4, 5 instances, 2 memories: flags 16..96, then memories 96..104.
    (4, Component(num_runtime_component_instances=5, num_runtime_memories=2), {
        ("instance_flags", 4): 80, "runtime_memories": 96, ("runtime_memory", 1): 100,
        "runtime_reallocs": 104, "size_of_vmctx": 104,
    }),
    # ptr 1: no alignment but align(16). store 4..6; align(16) -> 16; flags 16..32;
    # lowering_anyfuncs 32..35 (3*1); lowerings 35..37 (2*1); memories 37..38.
    (1, Component(num_lowerings=1, num_runtime_component_instances=1, num_runtime_memories=1), {
        "store": 4, ("instance_flags", 0): 16, ("lowering_anyfunc", 0): 32, "lowerings": 35,
        ("lowering_data", 0): 36, ("runtime_memory", 0): 37, "size_of_vmctx": 38,
    }),
    # ptr 64: magic 0..4; align(64) -> 64; store 64..192; align(16) -> 192; one anyfunc of 192.
    (64, Component(num_always_trap=1), {
        "store": 64, "always_trap_anyfuncs": 192, "size_of_vmctx": 384,
    }),
    # The largest flags array that fits: 32 + 16 * (2**28 - 3) = 2**32 - 16.
    (8, Component(num_runtime_component_instances=2**28 - 3), {
        ("instance_flags", 2**28 - 4): 2**32 - 32, "size_of_vmctx": 2**32 - 16,
    }),
]


def _cases():
    for ptr, component, expected in KNOWN:
        for key, value in expected.items():
            name, args = (key, ()) if isinstance(key, str) else (key[0], key[1:])
            yield pytest.param(ptr, component, name, args, value, id=f"ptr{ptr}-{name}{list(args)}")


@pytest.mark.parametrize("ptr, component, method, args, expected", list(_cases()))
def test_known_offset(ptr, component, method, args, expected):
    assert getattr(VMComponentOffsets(ptr, component), method)(*args) == expected


def test_count_attributes_and_ptr():
    o = VMComponentOffsets(HostPtr, SAMPLE)
    assert o.ptr == HostPtr and o.ptr.size() == o.pointer_size()
    assert (o.num_lowerings, o.num_runtime_memories, o.num_runtime_reallocs) == (3, 1, 1)
    assert (o.num_runtime_post_returns, o.num_runtime_component_instances, o.num_always_trap) == (1, 2, 1)


@pytest.mark.parametrize(
    "method, count_name",
    [
        ("instance_flags", "num_runtime_component_instances"),
        ("lowering_anyfunc", "num_lowerings"),
        ("always_trap_anyfunc", "num_always_trap"),
        ("lowering", "num_lowerings"),
        ("lowering_callee", "num_lowerings"),
        ("lowering_data", "num_lowerings"),
        ("runtime_memory", "num_runtime_memories"),
        ("runtime_realloc", "num_runtime_reallocs"),
        ("runtime_post_return", "num_runtime_post_returns"),
    ],
)
def test_index_out_of_range_names_accessor_index_and_count(method, count_name):
    o = VMComponentOffsets(8, SAMPLE)
    count = getattr(o, count_name)
    getattr(o, method)(count - 1)
    for bad in (count, count + 7, -1, 2**32):
        with pytest.raises(IndexError) as e:
            getattr(o, method)(bad)
        assert str(e.value) == f"{method} index {bad} out of range ({count_name}={count})"


def test_index_error_matches_guide_example():
    with pytest.raises(IndexError, match=r"^lowering index 5 out of range \(num_lowerings=3\)$"):
        VMComponentOffsets(8, SAMPLE).lowering(5)


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_index_must_be_int(bad):
    with pytest.raises(TypeError, match="lowering index must be an int"):
        VMComponentOffsets(8, SAMPLE).lowering(bad)


@pytest.mark.parametrize(
    "component, ptr, field, step",
    [
        (Component(num_runtime_component_instances=2**28), 8, "flags", "checked_mul"),
        (Component(num_runtime_component_instances=2**28 - 1), 8, "flags", "checked_add"),
        (Component(num_runtime_component_instances=2**28 - 2), 8, "flags", "checked_add"),
        (Component(num_lowerings=2**32 - 1), 4, "lowering_anyfuncs", "checked_mul"),
        (Component(num_lowerings=(2**32 - 32) // 24), 8, "lowerings", "checked_add"),
        (Component(num_lowerings=(2**32 - 32) // 24, num_always_trap=1), 8, "always_trap_anyfuncs", "checked_add"),
        (Component(num_always_trap=2**30), 4, "always_trap_anyfuncs", "checked_mul"),
        (Component(num_runtime_post_returns=2**29 - 4), 8, "post_returns", "checked_add"),
        (Component(num_runtime_memories=2**32 - 1), 1, "memories", "checked_add"),
        (Component(num_runtime_memories=2**32 - 17, num_runtime_reallocs=1), 1, "reallocs", "checked_add"),
    ],
)
def test_overflow_names_field(component, ptr, field, step):
    with pytest.raises(OverflowError, match=rf"^(size|end) of {field}: .*\({step}\)$"):
        VMComponentOffsets(ptr, component)


def test_layout_overflow_is_a_package_error():
    assert issubclass(LayoutOverflowError, OverflowError)


@pytest.mark.parametrize("size", [1, 2, 4, 8, 16, 32, 64])
def test_valid_pointer_sizes(size):
    p = PtrSize(size)
    assert p == size and p.size() == size
    assert VMComponentOffsets(size, Component()).pointer_size() == size


@pytest.mark.parametrize("size", [0, 3, 5, 6, 12, 24, 128, 256, -8, 8.0, "8", None, True])
def test_invalid_pointer_sizes_rejected_at_construction(size):
    with pytest.raises(InvalidPtrSizeError) as e:
        VMComponentOffsets(size, Component())
    assert isinstance(e.value, ValueError)
    assert repr(size) in str(e.value) or str(size) in str(e.value)


@pytest.mark.parametrize(
    "ptr, anyfunc, vmglobal, func_ptr, type_index, vmctx",
    [(1, 3, 16, 0, 1, 2), (4, 12, 16, 0, 4, 8), (8, 24, 16, 0, 8, 16), (64, 192, 16, 0, 64, 128)],
)
def test_ptrsize_helpers(ptr, anyfunc, vmglobal, func_ptr, type_index, vmctx):
    p = PtrSize(ptr)
    assert (p.size_of_vmcaller_checked_anyfunc(), size_of_vmcaller_checked_anyfunc(ptr)) == (anyfunc, anyfunc)
    assert (p.size_of_vmglobal_definition(), size_of_vmglobal_definition(ptr)) == (vmglobal, vmglobal)
    assert vmcaller_checked_anyfunc_func_ptr(ptr) == p.vmcaller_checked_anyfunc_func_ptr() == func_ptr
    assert vmcaller_checked_anyfunc_type_index(ptr) == p.vmcaller_checked_anyfunc_type_index() == type_index
    assert vmcaller_checked_anyfunc_vmctx(ptr) == p.vmcaller_checked_anyfunc_vmctx() == vmctx


@pytest.mark.parametrize(
    "ptr, expected",
    [(1, 0xEF), (2, 0xBEEF), (4, 0xBEEF_BEEF), (8, 0xDEAD_DEAD_BEEF_BEEF), (16, 0xDEAD_DEAD_BEEF_BEEF)],
)
def test_invalid_ptr_truncates_to_pointer_width(ptr, expected):
    assert invalid_ptr(ptr) == expected


@pytest.mark.parametrize("name", ["num_lowerings", "num_runtime_memories", "num_runtime_reallocs",
                                  "num_runtime_post_returns", "num_runtime_component_instances",
                                  "num_always_trap"])
@pytest.mark.parametrize("value", [-1, 2**32, 2**40, 1.5, "3", None])
def test_component_count_validation_names_field_and_value(name, value):
    with pytest.raises(ValueError) as e:
        Component(**{name: value})
    assert isinstance(e.value, ComponentValueError)
    assert name in str(e.value) and repr(value).strip("'") in str(e.value)


def test_component_is_immutable_and_accepts_u32_max():
    c = Component(num_lowerings=2**32 - 1)
    assert c.num_lowerings == 2**32 - 1
    with pytest.raises(AttributeError):
        c.num_lowerings = 1


def test_regions_follow_declaration_order_with_holes():
    regions = VMComponentOffsets(8, SAMPLE).regions()
    assert [r.name for r in regions] == [
        "magic", "store", "flags", "lowering_anyfuncs", "always_trap_anyfuncs",
        "lowerings", "memories", "reallocs", "post_returns",
    ]
    holes = {r.name: r.padding_before for r in regions if r.padding_before}
    assert holes == {"store": 4, "flags": 8}
    flags = regions[2]
    assert (flags.offset, flags.size, flags.elem_type, flags.elem_size, flags.count) == (
        32, 32, "VMGlobalDefinition", 16, 2)
