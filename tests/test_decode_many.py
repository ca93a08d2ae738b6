"""`decode_many` (contexts of one shape side by side, as a scan decodes them) against `decode` one at a time.

Every context is a real initialization of its release, then some of its bytes overwritten: the magic,
padding, a flag word, a poisoned or foreign pointer, so that every kind of anomaly turns up in some
contexts and not in others. The two must agree on every record, every anomaly and every padding byte.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmctx_emu import OwnedComponentInstance, VMLowering
from vmctx_emu.dumps.decode import decode, decode_many
from vmctx_emu.dumps.dump import DumpedContext
from vmctx_emu.errors import VMCtxEmuError
from vmctx_emu.layouts.releases import wasmtime_layout

RELEASES = ["seed", "0.40.0", "21.0.0", "36.0.0", "50.0.0"]


def context(release, counts, ptr, order, debug):
    layout = wasmtime_layout(release)
    counts = {k: v for k, v in counts.items() if k in layout.count_names}
    header = {name: (0x1000, 0x2000) if name == "store" else 0x3000 + 0x100 * i  # a named release needs them all
              for i, name in enumerate(layout.header_names())}
    inst = OwnedComponentInstance(counts, wasmtime=release, ptr=ptr, byte_order=order, debug_assertions=debug,
                                  header=header)
    return inst.to_bytes(), layout.component(**counts)


def same(a, b):
    assert (a.records == b.records).all()
    assert a.anomalies == b.anomalies
    assert (a.covered == b.covered).all()
    assert a.values.keys() == b.values.keys() and all((a.values[k] == b.values[k]).all() for k in a.values)
    assert a.columns == b.columns and len(a) == len(b)


# (what a context's bytes get, at a place drawn from its size): each reaches one check of `_anomalies`.
EDITS = st.sampled_from(["none", "magic", "byte", "word", "poison", "own"])


@settings(max_examples=60, deadline=None)
@given(release=st.sampled_from(RELEASES), ptr=st.sampled_from([4, 8]), order=st.sampled_from(["little", "big"]),
       debug=st.booleans(), addressed=st.booleans(),
       counts=st.fixed_dictionaries({name: st.integers(0, 3) for name in (
           "num_lowerings", "num_runtime_memories", "num_runtime_reallocs", "num_runtime_post_returns",
           "num_runtime_component_instances", "num_trampolines", "num_runtime_callbacks",
           "num_resources", "num_always_trap", "num_transcoders")}),
       edits=st.lists(st.tuples(EDITS, st.floats(0, 1, exclude_max=True), st.integers(0, 2**64 - 1)),
                      min_size=1, max_size=12))
def test_side_by_side_is_one_at_a_time(release, ptr, order, debug, addressed, counts, edits):
    data, component = context(release, counts, ptr, order, debug)
    size = len(data)
    ctxs = []
    for k, (edit, where, value) in enumerate(edits):
        raw = bytearray(data)
        at = int(where * size) // ptr * ptr
        address = 0x10000 * (k + 1) if addressed else None
        if edit == "magic":
            raw[0] ^= 0x20
        elif edit == "byte":
            raw[int(where * size)] = value & 0xFF or 1
        elif edit == "word":
            raw[at:at + ptr] = (value % (1 << (8 * ptr))).to_bytes(ptr, order)
        elif edit == "poison":
            raw[at:at + ptr] = b"\xff" * ptr if value & 1 else bytes(ptr)
        elif edit == "own" and address is not None:
            raw[at:at + ptr] = address.to_bytes(ptr, order)
        ctxs.append(DumpedContext(bytes(raw), component, ptr, order, address=address, debug_assertions=debug,
                                  wasmtime=release))
    together = decode_many(ctxs)
    assert [d.ctx for d in together] == ctxs
    for a, ctx in zip(together, ctxs):
        same(a, decode(ctx))


def test_contexts_of_other_shapes_or_sizes_are_decoded_alone():
    small, component = context("50.0.0", {"num_lowerings": 1}, 8, "little", False)
    other, component2 = context("50.0.0", {"num_lowerings": 2}, 8, "little", False)
    big, component3 = context("50.0.0", {"num_lowerings": 5000}, 8, "little", False)
    ctxs = [DumpedContext(small, component, 8, "little", debug_assertions=False, wasmtime="50.0.0"),
            DumpedContext(other, component2, 8, "little", debug_assertions=False, wasmtime="50.0.0"),
            DumpedContext(big, component3, 8, "little", debug_assertions=False, wasmtime="50.0.0"),
            DumpedContext(big, component3, 8, "little", debug_assertions=False, wasmtime="50.0.0", address=0x1000)]
    for a, ctx in zip(decode_many(ctxs), ctxs):
        same(a, decode(ctx))
    assert decode_many([]) == []


def test_with_bytes_is_the_constructor():
    inst = OwnedComponentInstance({"num_lowerings": 2}, wasmtime="36.0.0", debug_assertions=True,
                                  header={"builtins": 0x3000, "vm_store_context": 0x4000})
    inst.set_lowering(1, VMLowering(0x10, 0x20))
    data, component = inst.to_bytes(), inst.offsets.component
    proto = DumpedContext(bytes(len(data)), component, 8, "little", debug_assertions=True, wasmtime="36.0.0")
    made = DumpedContext(data, component, 8, "little", address=0x5000, debug_assertions=True, wasmtime="36.0.0",
                         source="there")
    clone = proto.with_bytes(data, address=0x5000, source="there")
    assert clone.to_bytes() == made.to_bytes() and clone.layout_parameters() == made.layout_parameters()
    assert (clone.vmctx, clone.source, repr(clone)) == (made.vmctx, made.source, repr(made))
    assert clone.lowering(1) == made.lowering(1) == (0x10, 0x20) != proto.lowering(1)
    same(decode(clone), decode(made))
    with pytest.raises(VMCtxEmuError, match="needs size_of_vmctx"):
        proto.with_bytes(data[:-8])
    with pytest.raises(TypeError):
        proto.with_bytes([1, 2, 3])
    assert not any(proto.memory)  # the prototype keeps its own bytes
