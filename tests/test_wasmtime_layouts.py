"""Every released layout: version lookup, hand-worked offsets, accessor names, boundaries, properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import LayoutOverflowError, UnknownReleaseError, wasmtime_layout
from vmctx_emu.layouts.releases import ALL_RELEASES, LAYOUTS, SEED

# Regions (name, offset) for the shape "every count 1", worked by hand from each
# release's fields! list: ptr 8, then ptr 4; the last entry is size_of_vmctx().
KNOWN = {
    # magic 0..4; align(P); store 2P; limits P; align(16); flags 16; align(P); 3P anyfuncs; 2P lowering; P ptrs
    "0.40.1": ([("store", 8), ("limits", 24), ("flags", 32), ("lowering_anyfuncs", 48),
                ("always_trap_anyfuncs", 72), ("lowerings", 96), ("memories", 112), ("reallocs", 120),
                ("post_returns", 128), 136],
               [("store", 4), ("limits", 12), ("flags", 16), ("lowering_anyfuncs", 32),
                ("always_trap_anyfuncs", 44), ("lowerings", 56), ("memories", 64), ("reallocs", 68),
                ("post_returns", 72), 76]),
    # transcode_libcalls P before store; limits; align(16) -> 48 (ptr 8) / 32 (ptr 4); three 3P arrays
    "8.0.1": ([("transcode_libcalls", 8), ("store", 16), ("limits", 32), ("flags", 48),
               ("lowering_anyfuncs", 64), ("always_trap_anyfuncs", 88), ("transcoder_anyfuncs", 112),
               ("lowerings", 136), ("memories", 152), ("reallocs", 160), ("post_returns", 168), 176],
              [("transcode_libcalls", 4), ("store", 8), ("limits", 16), ("flags", 32),
               ("lowering_anyfuncs", 48), ("always_trap_anyfuncs", 60), ("transcoder_anyfuncs", 72),
               ("lowerings", 84), ("memories", 92), ("reallocs", 96), ("post_returns", 100), 104]),
    # as 8.0.1 with 5P func refs: 40 / 20 bytes each
    "9.0.0": ([("flags", 48), ("lowering_func_refs", 64), ("always_trap_func_refs", 104),
               ("transcoder_func_refs", 144), ("lowerings", 184), ("memories", 200), 224],
              [("flags", 32), ("lowering_func_refs", 48), ("always_trap_func_refs", 68),
               ("transcoder_func_refs", 88), ("lowerings", 108), ("memories", 116), 128]),
    # libcalls, store, limits; one 5P trampoline array; resource destructors last
    "21.0.2": ([("libcalls", 8), ("store", 16), ("limits", 32), ("flags", 48), ("trampoline_func_refs", 64),
                ("lowerings", 104), ("memories", 120), ("reallocs", 128), ("post_returns", 136),
                ("resource_destructors", 144), 152],
               [("libcalls", 4), ("store", 8), ("limits", 16), ("flags", 32), ("trampoline_func_refs", 48),
                ("lowerings", 68), ("memories", 76), ("reallocs", 80), ("post_returns", 84),
                ("resource_destructors", 88), 92]),
    # 4P func refs: 32 / 16 bytes
    "22.0.0": ([("trampoline_func_refs", 64), ("lowerings", 96), ("resource_destructors", 136), 144],
               [("trampoline_func_refs", 48), ("lowerings", 64), ("resource_destructors", 84), 88]),
    "29.0.1": ([("builtins", 8), ("store", 16), ("limits", 32), ("flags", 48), 144],
               [("builtins", 4), ("store", 8), ("limits", 16), ("flags", 32), 88]),
    # no store: builtins, limits, align(16) -> 32 / 16; callbacks between reallocs and post_returns
    "30.0.0": ([("builtins", 8), ("limits", 16), ("flags", 32), ("trampoline_func_refs", 48), ("lowerings", 80),
                ("memories", 96), ("reallocs", 104), ("callbacks", 112), ("post_returns", 120),
                ("resource_destructors", 128), 136],
               [("builtins", 4), ("limits", 8), ("flags", 16), ("trampoline_func_refs", 32), ("lowerings", 48),
                ("memories", 56), ("reallocs", 60), ("callbacks", 64), ("post_returns", 68),
                ("resource_destructors", 72), 76]),
    "31.0.0": ([("vm_store_context", 16), ("flags", 32), 136], [("vm_store_context", 8), ("flags", 16), 76]),
    # tables after memories: 2P
    "33.0.2": ([("memories", 96), ("tables", 104), ("reallocs", 120), ("callbacks", 128), ("post_returns", 136),
                ("resource_destructors", 144), 152],
               [("memories", 56), ("tables", 60), ("reallocs", 68), ("callbacks", 72), ("post_returns", 76),
                ("resource_destructors", 80), 84]),
    # 3P tables
    "34.0.0": ([("tables", 104), ("reallocs", 128), 160], [("tables", 60), ("reallocs", 72), 88]),
    # intrinsic func refs after trampolines
    "41.0.4": ([("trampoline_func_refs", 48), ("intrinsic_func_refs", 80), ("lowerings", 112), ("memories", 128),
                ("tables", 136), ("reallocs", 160), ("resource_destructors", 184), 192],
               [("trampoline_func_refs", 32), ("intrinsic_func_refs", 48), ("lowerings", 64), ("memories", 72),
                ("tables", 76), ("reallocs", 88), ("resource_destructors", 100), 104]),
    # task_may_block (16 bytes) right after the flags
    "42.0.0": ([("flags", 32), ("task_may_block", 48), ("trampoline_func_refs", 64), ("intrinsic_func_refs", 96),
                ("lowerings", 128), ("memories", 144), ("tables", 152), ("reallocs", 176), ("callbacks", 184),
                ("post_returns", 192), ("resource_destructors", 200), 208],
               [("flags", 16), ("task_may_block", 32), ("trampoline_func_refs", 48), ("intrinsic_func_refs", 64),
                ("lowerings", 80), ("memories", 88), ("tables", 92), ("reallocs", 104), ("callbacks", 108),
                ("post_returns", 112), ("resource_destructors", 116), 120]),
    "48.0.0": ([("may_leave", 32), ("task_may_block", 48), 208], [("may_leave", 16), ("task_may_block", 32), 120]),
    # v49-v51: builtins, store_context; align(16); may_leave; no task_may_block; align(P);
    # repr(C) VMFuncRef 32 / 16, VMLowering 16 / 8, VMTableImport 24 / 12, pointers 8 / 4
    "49.0.0": ([("builtins", 8), ("store_context", 16), ("may_leave", 32), ("trampoline_func_refs", 48),
                ("intrinsic_func_refs", 80), ("lowerings", 112), ("memories", 128), ("tables", 136),
                ("reallocs", 160), ("callbacks", 168), ("post_returns", 176), ("resource_destructors", 184), 192],
               [("builtins", 4), ("store_context", 8), ("may_leave", 16), ("trampoline_func_refs", 32),
                ("intrinsic_func_refs", 48), ("lowerings", 64), ("memories", 72), ("tables", 76),
                ("reallocs", 88), ("callbacks", 92), ("post_returns", 96), ("resource_destructors", 100), 104]),
}
KNOWN["50.0.1"] = KNOWN["51.0.0"] = KNOWN["49.0.0"]


# v48 sizes VMFuncRef and VMTableImport as repr(C) structs: at P=1 and P=2 they are 12 and 8
# bytes (u32 type_index/index aligned to 4), where v47's PtrSize helpers give 4P and 3P.
# Every count 1: magic 0..4; align(P) -> 4; builtins, vm_store_context; align(16) -> 16;
# may_leave 16..32; task_may_block 32..48; align(P) -> 48; then the arrays.
SMALL_POINTERS = {
    ("48.0.0", 1): ([("trampoline_func_refs", 48), ("intrinsic_func_refs", 60), ("lowerings", 72),
                     ("memories", 74), ("tables", 75), ("reallocs", 83), ("resource_destructors", 86)], 87),
    ("48.0.0", 2): ([("trampoline_func_refs", 48), ("intrinsic_func_refs", 60), ("lowerings", 72),
                     ("memories", 76), ("tables", 78), ("reallocs", 86), ("resource_destructors", 92)], 94),
    ("47.0.4", 1): ([("trampoline_func_refs", 48), ("intrinsic_func_refs", 52), ("lowerings", 56),
                     ("memories", 58), ("tables", 59), ("reallocs", 62), ("resource_destructors", 65)], 66),
    ("47.0.4", 2): ([("trampoline_func_refs", 48), ("intrinsic_func_refs", 56), ("lowerings", 64),
                     ("memories", 68), ("tables", 70), ("reallocs", 76), ("resource_destructors", 82)], 84),
    # v49-v51 as v48 without task_may_block: align(P) after may_leave -> 32
    ("50.0.1", 1): ([("may_leave", 16), ("trampoline_func_refs", 32), ("tables", 59)], 71),
    ("50.0.1", 2): ([("may_leave", 16), ("trampoline_func_refs", 32), ("tables", 62)], 78),
    ("51.0.0", 1): ([("may_leave", 16), ("trampoline_func_refs", 32), ("tables", 59)], 71),
    ("51.0.0", 2): ([("may_leave", 16), ("trampoline_func_refs", 32), ("tables", 62)], 78),
}


@pytest.mark.parametrize("version, ptr", SMALL_POINTERS, ids=[f"{v}-p{p}" for v, p in SMALL_POINTERS])
def test_small_pointer_sizes(version, ptr):
    layout = wasmtime_layout(version)
    o = layout.offsets(ptr, **dict.fromkeys(layout.count_names, 1))
    expected, size = SMALL_POINTERS[(version, ptr)]
    assert [(name, o.region(name).offset) for name, _ in expected] == expected
    assert o.size_of_vmctx() == size


def test_array_offsets_of_v49():
    layout = wasmtime_layout("49")
    o = layout.offsets(8, num_runtime_component_instances=2, num_trampolines=3)
    arr = o.trampoline_func_refs()
    assert (arr.begin(), arr.stride(), arr.count(), arr.at(2)) == (64, 32, 3, 128)
    assert (o.may_leave().begin(), o.may_leave().at(1)) == (32, 48)
    with pytest.raises(IndexError, match=r"^trampoline_func_refs\(\)\.at index 3 out of range \(count=3\)$"):
        arr.at(3)


@pytest.mark.parametrize("version", KNOWN)
@pytest.mark.parametrize("ptr", [8, 4])
def test_hand_worked_offsets(version, ptr):
    layout = wasmtime_layout(version)
    expected = KNOWN[version][0 if ptr == 8 else 1]
    o = layout.offsets(ptr, **dict.fromkeys(layout.count_names, 1))
    for name, offset in expected[:-1]:
        assert o.region(name).offset == offset, name
    assert o.size_of_vmctx() == expected[-1]


# The `pub fn` names of each release's VMComponentOffsets (besides `new`), read at the tag.
RUST_METHODS = {
    "0.40.0": "pointer_size magic instance_flags store limits lowering_anyfuncs lowering_anyfunc always_trap_anyfuncs always_trap_anyfunc lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_post_returns runtime_post_return size_of_vmctx",
    "1.0.0": "pointer_size magic transcode_libcalls instance_flags store limits lowering_anyfuncs lowering_anyfunc always_trap_anyfuncs always_trap_anyfunc transcoder_anyfuncs transcoder_anyfunc lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_post_returns runtime_post_return size_of_vmctx",
    "9.0.0": "pointer_size magic transcode_libcalls instance_flags store limits lowering_func_refs lowering_func_ref always_trap_func_refs always_trap_func_ref transcoder_func_refs transcoder_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_post_returns runtime_post_return size_of_vmctx",
    "12.0.0": "pointer_size magic libcalls instance_flags store limits trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "29.0.0": "pointer_size magic builtins instance_flags store limits trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "30.0.0": "pointer_size magic builtins instance_flags limits trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "31.0.0": "pointer_size magic builtins instance_flags vm_store_context trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "32.0.0": "pointer_size magic builtins instance_flags vm_store_context trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table size_of_vmtable runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "34.0.0": "pointer_size magic builtins instance_flags vm_store_context trampoline_func_refs trampoline_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table size_of_vmtable_import runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "39.0.0": "pointer_size magic builtins instance_flags vm_store_context trampoline_func_refs trampoline_func_ref unsafe_intrinsic_func_refs unsafe_intrinsic_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table size_of_vmtable_import runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "42.0.0": "pointer_size magic builtins instance_flags task_may_block vm_store_context trampoline_func_refs trampoline_func_ref unsafe_intrinsic_func_refs unsafe_intrinsic_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table size_of_vmtable_import runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "47.0.0": "pointer_size magic builtins may_leave task_may_block vm_store_context trampoline_func_refs trampoline_func_ref unsafe_intrinsic_func_refs unsafe_intrinsic_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table size_of_vmtable_import runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "48.0.0": "pointer_size magic builtins may_leave task_may_block vm_store_context trampoline_func_refs trampoline_func_ref unsafe_intrinsic_func_refs unsafe_intrinsic_func_ref lowerings lowering lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset runtime_memories runtime_memory runtime_tables runtime_table runtime_reallocs runtime_realloc runtime_callbacks runtime_callback runtime_post_returns runtime_post_return resource_destructors resource_destructor size_of_vmctx",
    "49.0.0": "pointer_size size_of_vmctx lowering_callee lowering_data lowering_size lowering_callee_offset lowering_data_offset may_leave trampoline_func_refs intrinsic_func_refs lowerings memories tables reallocs callbacks post_returns resource_destructors",
}
RUST_METHODS["50.0.1"] = RUST_METHODS["51.0.0"] = RUST_METHODS["49.0.0"]
OUR_EXTRAS = {"regions", "region", "element_offset"}


@pytest.mark.parametrize("version", RUST_METHODS)
def test_accessors_are_exactly_the_releases(version):
    cls = wasmtime_layout(version).offsets_class
    ours = {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))} - {"LAYOUT"}
    assert ours - OUR_EXTRAS == set(RUST_METHODS[version].split())


@pytest.mark.parametrize("version, names", [
    ("0.40.0", "num_lowerings num_runtime_memories num_runtime_reallocs num_runtime_post_returns num_runtime_component_instances num_always_trap"),
    ("v8.0.1", "num_lowerings num_runtime_memories num_runtime_reallocs num_runtime_post_returns num_runtime_component_instances num_always_trap num_transcoders"),
    ("21", "num_lowerings num_runtime_memories num_runtime_reallocs num_runtime_post_returns num_runtime_component_instances num_trampolines num_resources"),
    ("30", "num_lowerings num_runtime_memories num_runtime_reallocs num_runtime_callbacks num_runtime_post_returns num_runtime_component_instances num_trampolines num_resources"),
    ("33", "num_lowerings num_runtime_memories num_runtime_tables num_runtime_reallocs num_runtime_callbacks num_runtime_post_returns num_runtime_component_instances num_trampolines num_resources"),
    ("48", "num_lowerings num_runtime_memories num_runtime_tables num_runtime_reallocs num_runtime_callbacks num_runtime_post_returns num_runtime_component_instances num_trampolines num_unsafe_intrinsics num_resources"),
])
def test_count_names(version, names):
    assert wasmtime_layout(version).count_names == tuple(names.split())


@pytest.mark.parametrize("text, layout_id, first", [
    ("seed", "seed", ""), ("0.40.1", "L1", "0.40.0"), ("v0.40.0", "L1", "0.40.0"), ("1", "L2", "1.0.0"),
    ("v21.0.2", "L4", "12.0.0"), ("21", "L4", "12.0.0"), ("22.0.0", "L5", "22.0.0"), ("29", "L5", "29.0.0"),
    ("48", "L10", "48.0.0"), ("v47.0.4", "L10", "47.0.0"), ("38", "L8", "36.0.0"),
    ("35", "L8", "34.0.0"), ("49", "L11", "49.0.0"), ("50.0.1", "L11", "49.0.0"),
    ("51", "L11", "49.0.0"), ("v51.0.0", "L11", "49.0.0"),
    # patch releases after 2026-08-20 (RELEASE_PATCHES says where each is known from)
    ("48.0.1", "L10", "48.0.0"), ("48.0.10", "L10", "48.0.0"), ("36.0.22", "L8", "36.0.0"),
    ("49.0.7", "L11", "49.0.0"), ("50.0.4", "L11", "49.0.0"),
])
def test_version_lookup(text, layout_id, first):
    layout = wasmtime_layout(text)
    assert (layout.id, layout.first) == (layout_id, first)
    if layout is not SEED:
        assert any(r.startswith(text.lstrip("v")) for r in layout.releases)


@pytest.mark.parametrize("older, newer", [
    ("0.40.1", "1.0.0"), ("8.0.1", "9.0.0"), ("11.0.2", "12.0.0"), ("21.0.2", "22.0.0"), ("28.0.1", "29.0.0"),
    ("29.0.1", "30.0.0"), ("30.0.2", "31.0.0"), ("31.0.0", "32.0.0"), ("33.0.2", "34.0.0"), ("38.0.4", "39.0.0"),
    ("41.0.4", "42.0.0"), ("46.0.3", "47.0.0"), ("47.0.4", "48.0.0"),
])
def test_release_boundaries(older, newer):
    a, b = wasmtime_layout(older), wasmtime_layout(newer)
    assert a is not b and older in a.variant_releases and newer in b.variant_releases
    assert a.last == older and b.first == newer
    assert newer not in a.variant_releases and older not in b.variant_releases


@pytest.mark.parametrize("version, first, last", [
    ("0.40.0", "0.40.0", "0.40.1"), ("3", "1.0.0", "8.0.1"), ("10", "9.0.0", "11.0.2"), ("16", "12.0.0", "21.0.2"),
    ("22", "22.0.0", "29.0.1"), ("29", "22.0.0", "29.0.1"), ("30", "30.0.0", "31.0.0"), ("31", "30.0.0", "31.0.0"),
    ("33", "32.0.0", "33.0.2"), ("36", "34.0.0", "38.0.4"), ("40", "39.0.0", "41.0.4"), ("42", "42.0.0", "48.0.10"),
    ("48", "42.0.0", "48.0.10"), ("50", "49.0.0", "51.0.0"), ("51", "49.0.0", "51.0.0"),
])
def test_releases_cover_the_table_row(version, first, last):
    releases = wasmtime_layout(version).releases
    assert (releases[0], releases[-1]) == (first, last)


@pytest.mark.parametrize("text, what", [
    ("52", "Wasmtime 52 is not a supported release"), ("51.0.1", "Wasmtime 51.0.1 is not a supported release"),
    ("0.39.1", "Wasmtime 0.39.1 is not a supported release"), ("21.5.0", "Wasmtime 21.5.0 is not a supported release"),
    ("8.0.2", "Wasmtime 8.0.2 is not a supported release"), ("abc", "not a Wasmtime version: 'abc'"),
    ("v", "not a Wasmtime version: 'v'"), ("1.2.3.4", "not a Wasmtime version: '1.2.3.4'"),
])
def test_unknown_versions_name_the_newest_release_and_the_forms_not_the_table(text, what):
    newest = ALL_RELEASES[-1]
    major = newest.split(".")[0]
    with pytest.raises(UnknownReleaseError) as e:
        wasmtime_layout(text)
    assert str(e.value) == (f'{what} (newest known release: {newest}); give "seed" or a release from 0.40.0 to '
                            f'{newest}, as "{newest}", "v{newest}", "{major}.0" or "{major}" (its newest patch)')
    assert (e.value.version, e.value.newest) == (text, newest)
    assert "(L1)" not in str(e.value) and len(str(e.value)) < 250  # not the ~700 characters of every range


@pytest.mark.parametrize("version, ptr, ok", [
    ("seed", 64, True), ("0.40", 64, True), ("8", 64, True), ("9", 64, False), ("9", 32, True),
    ("21", 64, False), ("22", 64, False), ("48", 32, True), ("48", 64, False), ("48", 3, False),
])
def test_pointer_sizes_follow_each_releases_u8_arithmetic(version, ptr, ok):
    layout = wasmtime_layout(version)
    if ok:
        assert layout.offsets(ptr).pointer_size() == ptr
    else:
        with pytest.raises(ValueError, match=f"pointer size {ptr} is not supported"):
            layout.offsets(ptr)


@pytest.mark.parametrize("version, accessor, count_name", [
    ("21", "trampoline_func_ref", "num_trampolines"), ("41", "unsafe_intrinsic_func_ref", "num_unsafe_intrinsics"),
    ("48", "may_leave", "num_runtime_component_instances"), ("33", "runtime_table", "num_runtime_tables"),
    ("8", "transcoder_anyfunc", "num_transcoders"), ("30", "runtime_callback", "num_runtime_callbacks"),
    ("12", "resource_destructor", "num_resources"),
])
def test_release_accessors_check_indices(version, accessor, count_name):
    layout = wasmtime_layout(version)
    o = layout.offsets(8, **{count_name: 2})
    assert getattr(o, accessor)(1) - getattr(o, accessor)(0) == o.region(
        next(r.name for r in o.regions() if r.count_name == count_name and getattr(o, accessor)(0) == r.offset)
    ).elem_size
    with pytest.raises(IndexError, match=rf"^{accessor} index 2 out of range \({count_name}=2\)$"):
        getattr(o, accessor)(2)


@pytest.mark.parametrize("version, method, p8, p4", [
    ("33", "size_of_vmtable", 16, 8), ("34", "size_of_vmtable_import", 24, 12), ("47", "size_of_vmtable_import", 24, 12),
])
def test_table_size_helpers(version, method, p8, p4):
    layout = wasmtime_layout(version)
    assert getattr(layout.offsets(8), method)() == p8 and getattr(layout.offsets(4), method)() == p4


def test_overflow_names_the_field_in_every_release():
    for layout in LAYOUTS:
        with pytest.raises(LayoutOverflowError, match="lowerings"):
            layout.offsets(8, num_lowerings=2**31)


def test_layout_components_validate_counts():
    with pytest.raises(ValueError, match="num_trampolines must be in"):
        wasmtime_layout("21").offsets(8, num_trampolines=-1)
    with pytest.raises(TypeError):
        wasmtime_layout("21").offsets(8, num_always_trap=1)  # not a count of that release


@st.composite
def layouts_and_shapes(draw):
    layout = draw(st.sampled_from(LAYOUTS))
    ptr = draw(st.sampled_from(layout.valid_ptr_sizes))
    counts = {n: draw(st.integers(0, 50)) for n in layout.count_names}
    return layout, ptr, counts


@settings(max_examples=400, deadline=None)
@given(layouts_and_shapes())
def test_properties_hold_for_every_release(case):
    layout, ptr, counts = case
    o = layout.offsets(ptr, **counts)
    cursor = 0
    for r in o.regions():
        assert r.offset == cursor + r.padding_before
        # repr(C) elements (v48+) keep their natural alignment only where the
        # preceding align(ptr) gives it: at P=1/2 a 4-aligned VMFuncRef may not be.
        assert r.offset % r.align == 0 or r.align > ptr
        assert r.size == r.count * r.elem_size
        cursor = r.end
    assert cursor == o.size_of_vmctx()
    for f in layout.fields:
        if getattr(f, "element", None):
            region = o.region(f.name)
            accessor = getattr(o, f.element)
            if region.count:
                assert accessor(region.count - 1) == region.end - region.elem_size
            with pytest.raises(IndexError):
                accessor(region.count)
