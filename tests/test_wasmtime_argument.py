"""Every public `wasmtime=` is resolved once, by `resolve_wasmtime`: the two bugs of issue 18 and their kin."""

import sys

import pytest

from vmctx_emu import Component, OwnedComponentInstance, UnknownReleaseError, load_dump, wasmtime_layout
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.dumps.infer import infer
from vmctx_emu.layouts.ptr import HostPtr
from vmctx_emu.layouts.releases import LAYOUTS, SEED, release_of, resolve_release, resolve_wasmtime
from vmctx_emu.memory.native import c_alloc_init, ffi
from vmctx_emu.runtime.adapter import host_call, protocol_of
from vmctx_emu.runtime.protocols import protocol_for


def header_for(layout):
    return {n: (0x1000, 0x2000) if n == "store" else 0x3000 + 16 * k for k, n in enumerate(layout.header_names())}


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.first or "seed")
def test_a_layout_object_stands_for_its_newest_release_and_its_protocol(layout):
    """Bug: `wasmtime=wasmtime_layout("21")` stored the layout's repr as the release, so `protocol_of`
    raised UnknownReleaseError."""
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1}, wasmtime=layout, header=header_for(layout))
    assert inst.layout is layout and inst.wasmtime == inst.release == release_of(layout)
    flags = inst.instance_flags(0)
    assert protocol_of(flags) == protocol_for(layout) == protocol_for(release_of(layout))
    assert host_call(flags, lambda: 7) == 7


def test_the_issue_example_a_layout_object_with_a_header():
    l4 = wasmtime_layout("21")
    inst = OwnedComponentInstance(l4.component(num_runtime_component_instances=1), wasmtime=l4,
                                  header={"libcalls": 0x10, "store": (0x20, 0x30), "limits": 0x40})
    assert inst.wasmtime == "21.0.2" and protocol_of(inst.instance_flags(0)) == protocol_for("21")


SHAPE = dict(num_lowerings=2, num_runtime_memories=1, num_runtime_component_instances=2, num_always_trap=1)


@pytest.mark.parametrize("wasmtime", ["seed", "SEED", " seed ", SEED])
@pytest.mark.parametrize("debug", [True, False])
def test_the_seed_asked_for_by_name_defaults_its_store_like_the_default_call(wasmtime, debug):
    """Bug: `wasmtime="seed"` demanded the store pointer that the default call and `c_alloc_init` fill
    in as null (the seed's `header_defaults`)."""
    named = OwnedComponentInstance(Component(**SHAPE), wasmtime=wasmtime, debug_assertions=debug)
    default = OwnedComponentInstance(Component(**SHAPE), debug_assertions=debug)
    offsets = SEED.offsets(HostPtr, **SHAPE)
    c = c_alloc_init(offsets, debug_assertions=debug)
    assert named.layout is SEED and named.release == "seed"
    # Initialization writes no address (only setters write `vmctx`), so the three images are equal.
    assert named.to_bytes() == default.to_bytes() == bytes(ffi.buffer(c, offsets.size_of_vmctx()))
    store = named.offsets.store()
    assert named.to_bytes()[store:store + 2 * int(HostPtr)] == bytes(2 * int(HostPtr))


def test_the_seed_by_name_still_takes_a_store_and_refuses_other_headers():
    inst = OwnedComponentInstance(Component(**SHAPE), (0x10, 0x20), wasmtime="seed")
    assert inst.store() == (0x10, 0x20)
    with pytest.raises(ValueError, match="header limits is not written by seed"):
        OwnedComponentInstance(Component(**SHAPE), wasmtime="seed", header={"limits": 1})


@pytest.mark.parametrize("layout", [lay for lay in LAYOUTS if lay is not SEED], ids=lambda lay: lay.first)
def test_a_release_asked_for_by_name_still_needs_every_header(layout):
    names = layout.header_names()
    with pytest.raises(ValueError, match=f"header value missing for {names[0]}"):
        OwnedComponentInstance({}, wasmtime=layout.first)
    with pytest.raises(ValueError, match=f"header value missing for {names[0]}"):
        OwnedComponentInstance({}, wasmtime=layout)


SPELLINGS = ["21", "v21.0.2", "21.0.2", wasmtime_layout("21"), resolve_release("21")]


@pytest.mark.parametrize("wasmtime", SPELLINGS, ids=repr)
def test_every_spelling_of_a_release_resolves_alike_at_every_boundary(tmp_path, wasmtime):
    layout = wasmtime_layout("21")
    assert resolve_wasmtime(wasmtime).layout is layout and resolve_wasmtime(wasmtime).release == "21.0.2"
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1}, ptr=8, wasmtime=wasmtime,
                                  header=header_for(layout))
    assert (inst.layout, inst.wasmtime, inst.release) == (layout, "21.0.2", "21.0.2")
    path = inst.dump(tmp_path / "ctx.bin")
    for ctx in (load_dump(path), load_dump(path, wasmtime=wasmtime),
                DumpedContext(inst.to_bytes(), inst.offsets.component, 8, sys.byteorder, wasmtime=wasmtime)):
        assert (ctx.layout, ctx.wasmtime, ctx.release) == (layout, "21.0.2", "21.0.2")
    assert infer(inst.to_bytes(), 8, sys.byteorder, wasmtime=wasmtime).layout is layout


def test_a_patch_release_missing_from_the_table_takes_its_major_minor_layout():
    resolution = resolve_release("48.0.11")
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1}, wasmtime="48.0.11",
                                  header=header_for(resolution.layout))
    assert (inst.layout, inst.wasmtime, inst.release) == (resolution.layout, "48.0.11", "48.0.10")
    assert protocol_of(inst.instance_flags(0)) == protocol_for("48.0.10")


@pytest.mark.parametrize("wasmtime, error, needle", [
    ("99.0.0", UnknownReleaseError, r"Wasmtime 99.0.0 is not a supported release \(newest known release: "),
    ("99", UnknownReleaseError, "Wasmtime 99 is not a supported release"),
    ("banana", UnknownReleaseError, "not a Wasmtime version: 'banana'"),
    (21, TypeError, "wasmtime must be a release string or layout, got int 21"),
])
def test_what_no_layout_stands_for_is_refused_at_the_boundary(wasmtime, error, needle):
    with pytest.raises(error, match=needle):
        resolve_wasmtime(wasmtime)
    with pytest.raises(error, match=needle):
        OwnedComponentInstance({}, wasmtime=wasmtime)
