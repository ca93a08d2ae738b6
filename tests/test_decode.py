"""The decoder: records with interpretations, and the anomalies it reports."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import Component, OwnedComponentInstance, VMLowering, invalid_ptr
from vmctx_emu.dumps.decode import Interp, decode
from vmctx_emu.describe import decoded_table, interpretation
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.layouts.releases import wasmtime_layout

SAMPLE = Component(num_lowerings=2, num_runtime_memories=1, num_runtime_reallocs=1,
                   num_runtime_post_returns=1, num_runtime_component_instances=2, num_always_trap=1)
STORE = (0x1000, 0x2000)


def fresh(ptr=8, order="little", debug=True):
    return OwnedComponentInstance(SAMPLE, STORE, ptr=ptr, byte_order=order, debug_assertions=debug)


def by_label(decoded):
    return {decoded.label(r): (int(r["offset"]), int(r["value"]), int(r["interp"])) for r in decoded.records}


@pytest.mark.parametrize("ptr, order", [(8, "little"), (4, "big")])
def test_records_cover_every_field_in_memory_order(ptr, order):
    inst = fresh(ptr, order)
    inst.set_lowering(0, VMLowering(0x10, 0), 0x30, 4)
    d = decode(inst)
    offsets = d.records["offset"]
    assert (np.diff(offsets.astype(np.int64)) > 0).all()
    rows = by_label(d)
    o = inst.offsets
    # 1 magic + 2 store + 2 flags + 3*(2+1) anyfunc sub-fields + 2*2 lowering + 3 pointers
    assert len(d.records) == 1 + 2 + 2 + 9 + 4 + 3
    assert rows["magic"] == (0, 0x706D6F63, Interp.MAGIC_OK)
    assert rows["store.vtable"] == (o.store() + ptr, 0x2000, Interp.POINTER)
    assert rows["flags[1]"] == (o.instance_flags(1), 3, Interp.FLAGS)
    assert rows["lowering_anyfuncs[0].vmctx"] == (o.lowering_anyfunc(0) + 2 * ptr, inst.vmctx, Interp.OWN_VMCTX)
    assert rows["lowering_anyfuncs[0].type_index"][1:] == (4, Interp.VALUE)
    assert rows["lowering_anyfuncs[1].func_ptr"][1:] == (invalid_ptr(ptr), Interp.POISON)
    assert rows["lowering_anyfuncs[1].vmctx"][1:] == (0, Interp.NULL)
    assert rows["lowerings[0].data"] == (o.lowering_data(0), 0, Interp.NULL)
    assert rows["post_returns[0]"] == (o.runtime_post_return(0), invalid_ptr(ptr), Interp.POISON)
    assert d.anomalies == []


@pytest.mark.parametrize("code, value, text", [
    (Interp.FLAGS, 3, "MAY_LEAVE|MAY_ENTER"),
    (Interp.FLAGS, 7, "MAY_LEAVE|MAY_ENTER|NEEDS_POST_RETURN"),
    (Interp.FLAGS, 0, "0"),
    (Interp.FLAGS, 0xFFFFFFFF, "MAY_LEAVE|MAY_ENTER|NEEDS_POST_RETURN|0xfffffff8"),
    (Interp.POISON, 0xDEADDEADBEEFBEEF, "unset (debug poison)"),
    (Interp.NULL, 0, "null"),
    (Interp.OWN_VMCTX, 1, "this context"),
    (Interp.OTHER_VMCTX, 1, "NOT this context"),
    (Interp.MAGIC_BAD, int.from_bytes(b"core", "little"), "a core module's VMContext magic"),
])
def test_interpretation_words(code, value, text):
    assert text in interpretation(code, value, fresh())


def poke(inst, offset, value, width):
    inst.memory[offset:offset + width] = value.to_bytes(width, inst.byte_order)


ANOMALIES = [
    ("padding", lambda i: poke(i, 5, 0xAA, 1), "non-zero padding bytes at offsets 5..5 (in the hole before store)"),
    ("padding", lambda i: poke(i, i.offsets.instance_flags(0) + 8, 1, 1), "(in flags[0])"),
    ("padding", lambda i: poke(i, i.offsets.lowering_anyfunc(1) + 12, 0xFF, 2), "(in lowering_anyfuncs[1])"),
    ("flag_bits", lambda i: poke(i, i.offsets.instance_flags(1), 0x103, 4), "flags[1] = 0x00000103 has bits"),
    ("bad_magic", lambda i: i.memory.__setitem__(slice(0, 4), b"core"), "a core module's VMContext magic"),
    ("partly_set", lambda i: poke(i, i.offsets.lowering_callee(1), 0x77, 8), "set_lowering(1) is partly done (lowerings[1].callee 0x77, lowerings[1].data poisoned"),
    ("partly_set", lambda i: poke(i, i.offsets.always_trap_anyfunc(0) + 8, 5, 4), "set_always_trap(0) is partly done (always_trap_anyfuncs[0].func_ptr poisoned, always_trap_anyfuncs[0].type_index 0x5"),
    ("null_slot", lambda i: poke(i, i.offsets.runtime_memory(0), 0, 8), "memories[0].ptr is null in a debug dump"),
    ("poison_elsewhere", lambda i: poke(i, i.offsets.store(), invalid_ptr(8), 8), "store.data holds INVALID_PTR"),
    ("foreign_vmctx", lambda i: (i.set_always_trap(0, 0x40, 1), poke(i, i.offsets.always_trap_anyfunc(0) + 16, 0x999, 8)),
     "always_trap_anyfuncs[0].vmctx = 0x999 is not this context"),
]


@pytest.mark.parametrize("kind, mutate, needle", ANOMALIES, ids=[f"{k}-{n}" for n, (k, *_) in enumerate(ANOMALIES)])
def test_anomalies(kind, mutate, needle):
    inst = fresh()
    mutate(inst)
    found = decode(inst).anomalies
    assert [a.kind for a in found] == [kind], found
    assert needle in found[0].message


def test_release_dump_with_poison_is_anomalous():
    inst = fresh(debug=False)
    assert decode(inst).anomalies == []
    poke(inst, inst.offsets.runtime_realloc(0), invalid_ptr(8), 8)
    found = decode(inst).anomalies
    assert [a.kind for a in found] == ["release_poison"]
    assert "reallocs[0].ptr holds INVALID_PTR in a dump marked release" in found[0].message


def test_many_anomalies_are_counted_not_flooded():
    inst = OwnedComponentInstance(Component(num_runtime_component_instances=50), STORE)
    inst.view("flags")[:] = 0x100
    kinds = [a.kind for a in decode(inst).anomalies]
    assert kinds == ["flag_bits"] * 9
    assert "... and 42 more flag_bits anomalies" in decode(inst).anomalies[-1].message


def test_table_lists_fields_then_anomalies():
    inst = fresh()
    poke(inst, 5, 1, 1)
    text = decoded_table(decode(inst))
    assert "lowerings[1].callee" in text and "unset (debug poison)" in text
    assert text.splitlines()[-2] == "anomalies: 1"


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([4, 8]), st.sampled_from(["little", "big"]), st.booleans())
def test_fuzz_garbage_of_the_right_size_decodes(data, ptr, order, debug):
    shape = data.draw(st.builds(Component, **{n: st.integers(0, 5) for n in SAMPLE.counts()}))
    size = OwnedComponentInstance(shape, ptr=ptr, byte_order=order).offsets.size_of_vmctx()
    raw = data.draw(st.binary(min_size=size, max_size=size))
    address = data.draw(st.one_of(st.none(), st.integers(0, 2**(8 * ptr) - 1)))
    ctx = DumpedContext(raw, shape, ptr, order, address=address, debug_assertions=debug)
    decoded = decode(ctx)
    assert len(decoded.records) >= 3
    assert decoded.records["offset"].max() < size
    decoded_table(decoded)


@pytest.mark.parametrize("word, reported", [
    (0b111, True),    # MAY_LEAVE|MAY_ENTER|NEEDS_POST_RETURN
    (0b110, True),    # MAY_ENTER|NEEDS_POST_RETURN
    (0b011, False),   # at rest: MAY_LEAVE|MAY_ENTER
    (0b101, False),   # after a call, before post_return: MAY_LEAVE|NEEDS_POST_RETURN
    (0b000, False),
])
def test_flag_word_no_release_produces_is_an_anomaly(word, reported):
    inst = fresh()
    inst.instance_flags(1).value = word
    found = [a for a in decode(inst).anomalies if a.kind == "flag_state"]
    assert bool(found) == reported
    if reported:
        assert found[0].offset == inst.offsets.instance_flags(1)
        assert "MAY_ENTER and NEEDS_POST_RETURN both set" in found[0].message
        assert "flag_state" not in {a.kind for a in decode(fresh()).anomalies}


def test_flag_state_not_checked_where_the_bits_do_not_exist():
    """From v42 the word holds MAY_LEAVE only: bit 2 is an unknown bit, not a state."""
    layout = wasmtime_layout("42")
    inst = OwnedComponentInstance({"num_runtime_component_instances": 1}, ptr=8, wasmtime="42",
                                  header={n: 0x1000 for n in layout.header_names()})
    inst.subview(inst.layout.flags_field().name, "flags")[0] = 0b110
    kinds = {a.kind for a in decode(inst).anomalies}
    assert "flag_state" not in kinds and "flag_bits" in kinds
